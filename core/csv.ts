// One CSV field as RFC 4180 writes it: a field with a comma, quote or line break is quoted, its quotes
// doubled. Shared by `pairpref score`'s submission file and the page's results download.
export function csvField(v: string | number | boolean): string {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
