// Public API of core/: pure, isomorphic preprocessing shared by server, browser and training.
export * from './types.ts';
export * from './errors.ts';
export { BundleConfigError, resolvePreferenceConfig } from './config.ts';
export { parseComparison, turnsToRaw } from './parse.ts';
export { TEMPLATE_PRESETS, renderTemplate, templatePieces } from './template.ts';
export { createTokenizer } from './tokenizer.ts';
export { encodePrefix, proportionalShares, type Cut } from './truncate.ts';
export { checkMaxLength, encodeParsed, fixedTokenCount } from './encode.ts';
export {
  FEATURE_NAMES,
  computeFeatures,
  isAntisymmetricFeature,
  isFeatureName,
  swapFeatureName,
  swapFeatureValues,
} from './features.ts';
export { createPreprocessor, swapComparison, type Preprocessor } from './preprocess.ts';
export { batchFeeds, inputNames, type FeedBatch, type InputNames, type TensorMaker } from './feeds.ts';
