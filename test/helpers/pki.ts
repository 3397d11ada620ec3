// Certificates made at test time with openssl (EC prime256v1 keys, so it takes milliseconds): a CA,
// a server certificate for 127.0.0.1/localhost, a client certificate, and an unrelated second CA.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';


export interface Pki {
  readonly dir: string;
  readonly ca: Buffer;
  readonly serverCert: Buffer;
  readonly serverKey: Buffer;
  readonly clientCert: Buffer;
  readonly clientKey: Buffer;
  /** A second, unrelated CA, and a client certificate it signed. */
  readonly otherCa: Buffer;
  readonly otherClientCert: Buffer;
  readonly otherClientKey: Buffer;
  readonly paths: { serverCert: string; serverKey: string; ca: string };
}

const OPENSSL_CNF = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
`;

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'pairpref-pki-'));
  const cnf = join(dir, 'openssl.cnf');
  writeFileSync(cnf, OPENSSL_CNF);
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], timeout: 30_000 });
  const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string): void => ssl('req', '-config', cnf, '-x509', '-new', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=pairpref test ${name}`, '-extensions', 'ca');
  let serial = 1;
  const makeLeaf = (name: string, ca: string, ext: 'server' | 'client', cn: string): void => {
    ssl('req', '-config', cnf, '-new', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-set_serial', String(++serial), '-days', '2', '-out', `${name}.pem`, '-extfile', cnf, '-extensions', ext);
  };
  makeCa('ca');
  makeCa('other-ca');
  makeLeaf('server', 'ca', 'server', 'localhost');
  makeLeaf('client', 'ca', 'client', 'pairpref-test-client');
  makeLeaf('other-client', 'other-ca', 'client', 'pairpref-other-client');
  const read = (f: string): Buffer => readFileSync(join(dir, f));
  return {
    dir,
    ca: read('ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCert: read('client.pem'),
    clientKey: read('client.key'),
    otherCa: read('other-ca.pem'),
    otherClientCert: read('other-client.pem'),
    otherClientKey: read('other-client.key'),
    paths: { serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server.key'), ca: join(dir, 'ca.pem') },
  };
}

