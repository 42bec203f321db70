// node-oidc-provider as the benchmark's peer: one confidential client doing client credentials (RFC 6749
// section 4.4), one resource server whose access tokens are ES256-signed JWTs (RFC 9068), the default memory
// adapter, no development interactions. bench/token_endpoint.py starts it as one process:
//
//   node server.mjs --port 8101 --client-id bench-client --client-secret S --resource https://api.bench.test
//
// It prints "listening <url>" once the socket is bound, so the harness knows it is up.
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    resource: { type: 'string' },
    scope: { type: 'string', default: 'read' },
  },
});
for (const name of ['port', 'client-id', 'client-secret', 'resource']) {
  if (!args[name]) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
}

const host = '127.0.0.1';
const port = Number(args.port);
const issuer = `http://${host}:${port}`;

// A fresh P-256 key per run, as the other two servers make theirs: the benchmark measures signing, not key storage.
const signingKey = {
  ...crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
  kid: 'bench-es256',
  alg: 'ES256',
  use: 'sig',
};

const resourceServer = {
  scope: args.scope,
  audience: args.resource,
  accessTokenTTL: 3600,
  // RFC 9068 JWT access tokens (typ at+jwt), signed with the ES256 key above.
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'ES256' } },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: args['client-id'],
      client_secret: args['client-secret'],
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  routes: { token: '/oauth/token' },
  ttl: {
    AccessToken: 3600,
    ClientCredentials: 3600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: false },
    revocation: { enabled: false },
    resourceIndicators: {
      enabled: true,
      // A request without `resource` gets the one API, as Tessera's default audience would.
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? args.resource,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        if (resourceIndicator !== args.resource) {
          throw new Provider.errors.InvalidTarget();
        }
        return resourceServer;
      },
    },
  },
});
// Loopback only, no reverse proxy in front.
provider.proxy = false;

const server = http.createServer(provider.callback());
server.listen(port, host, () => {
  console.log(`listening ${issuer}`);
});

function stop() {
  server.close(() => process.exit(0));
  // Keep-alive connections from the load generator would hold close() open.
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
