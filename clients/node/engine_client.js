// A Node.js client of the engine, built only from the project's .proto files:
//   node engine_client.js ADDRESS add-host NAME AGENT_ADDRESS
//   node engine_client.js ADDRESS list-hosts
//   node engine_client.js ADDRESS list-commands [STATUS]
//   node engine_client.js ADDRESS get-command COMMAND_ID
// Prints the reply as JSON; on an error, prints {code, details} and exits 2.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const protos = path.resolve(__dirname, '..', '..', 'protos');
const definition = protoLoader.loadSync('engine_service/v1/engine_service.proto', {
  includeDirs: [protos],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
});
const api = grpc.loadPackageDefinition(definition).engine_service.v1;

function call(client, method, request) {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10000);
    client[method](request, { deadline }, (error, reply) => (error ? reject(error) : resolve(reply)));
  });
}

async function main() {
  const [address, verb, ...args] = process.argv.slice(2);
  const client = new api.EngineService(address, grpc.credentials.createInsecure());
  const requests = {
    'add-host': () => call(client, 'AddHost', { name: args[0], address: args[1] }),
    'list-hosts': () => call(client, 'ListHosts', {}),
    'list-commands': () => call(client, 'ListCommands', { status: args[0] || 'COMMAND_STATUS_UNSPECIFIED', page_size: 50 }),
    'get-command': () => call(client, 'GetCommand', { command_id: args[0] }),
  };
  if (!requests[verb]) {
    throw { code: -1, details: `unknown verb ${verb}; one of ${Object.keys(requests).join(', ')}` };
  }
  console.log(JSON.stringify(await requests[verb]()));
  client.close();
}

main().catch((error) => {
  console.error(JSON.stringify({ code: error.code, details: error.details }));
  process.exit(2);
});
