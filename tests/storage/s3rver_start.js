// Starts s3rver (npm, pinned by npm/package-lock.json) on 127.0.0.1 with a
// free port (or PORT: a restart on the same endpoint), its objects in DIR,
// and the bucket "mia-test"; prints "http://127.0.0.1:PORT" once it listens.
// Runs until killed.
//   node s3rver_start.js NODE_MODULES DIR [PORT]
'use strict';
const path = require('path');
const [modules, dir, port] = process.argv.slice(2);
const S3rver = require(path.join(modules, 's3rver'));
const server = new S3rver({
  address: '127.0.0.1',
  port: port ? Number(port) : 0,
  directory: dir,
  silent: true,
  configureBuckets: [{ name: 'mia-test' }],
});
server.run().then(
  (address) => {
    process.stdout.write(`http://127.0.0.1:${address.port}\n`);
  },
  (err) => {
    process.stderr.write(`s3rver: ${err}\n`);
    process.exit(1);
  },
);
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
