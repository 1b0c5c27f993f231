// A Node.js client of the engine, built only from the project's .proto files:
//   node engine_client.js [OPTIONS] ADDRESS add-host NAME AGENT_ADDRESS
//   node engine_client.js [OPTIONS] ADDRESS list-hosts
//   node engine_client.js [OPTIONS] ADDRESS list-commands [STATUS]
//   node engine_client.js [OPTIONS] ADDRESS get-command COMMAND_ID
//   node engine_client.js [OPTIONS] ADDRESS watch COMMAND_ID
// `node engine_client.js --help` lists the options. Prints the reply as JSON (the list verbs
// follow next_page_token and print every page's items as one list); on an error, prints
// {code, details} on stderr and exits 2. `watch` prints one JSON line per update and exits 0
// if the command SUCCEEDED, 1 if it ended otherwise.
'use strict';
const fs = require('fs');
const net = require('net');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const HELP = `usage: node engine_client.js [OPTIONS] ADDRESS VERB [ARGS]

verbs:
  add-host NAME AGENT_ADDRESS   register a host
  list-hosts                    every host (follows next_page_token)
  list-commands [STATUS]        top-level commands, e.g. COMMAND_STATUS_FAILED (every page)
  get-command COMMAND_ID        one command
  watch COMMAND_ID              one JSON line per update (status, progress) until the stream
                                ends; exit 0 if SUCCEEDED, 1 otherwise

options:
  --tls-ca FILE     the engine API speaks TLS: trust this CA (env ENGINECTL_TLS_CA)
  --tls-cert FILE   with --tls-key: a client certificate, for mutual TLS (env ENGINECTL_TLS_CERT)
  --tls-key FILE    its private key (env ENGINECTL_TLS_KEY)
  --token SECRET    send "authorization: Bearer SECRET" with every call (env ENGINECTL_TOKEN)
  --page-size N     items per page for the list verbs (default: the engine's, 50)
  --timeout SECONDS per call (default 30; watch: none)
  --insecure        allow plaintext to an address that is not loopback
  -h, --help        this text

Secure by default: without --tls-ca the client speaks plaintext, and only to a loopback
address (127.0.0.0/8, ::1, localhost); elsewhere it refuses (exit 2) unless --insecure.
Errors print {code, details} as JSON on stderr and exit 2.`;

const protos = path.resolve(__dirname, '..', '..', 'protos');

// grpc-js hands Node's TLS the address's host as its ServerName, and Node warns (DEP0123) when
// that is an IP address such as 127.0.0.1. The certificate is still checked against the IP
// address, so the warning says nothing about this client: keep it off stderr, which carries
// the error JSON.
const emitWarning = process.emitWarning;
process.emitWarning = (warning, ...rest) => {
  const code = rest[0] && typeof rest[0] === 'object' ? rest[0].code : rest[1];
  if (code === 'DEP0123') return;
  emitWarning.call(process, warning, ...rest);
};

class UsageError extends Error {
  constructor(details) {
    super(details);
    this.code = -1;
    this.details = details;
  }
}

const VALUED = ['tls-ca', 'tls-cert', 'tls-key', 'token', 'page-size', 'timeout'];

function parseArgs(argv) {
  const options = {};
  const positional = [];
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '-h' || arg === '--help') {
      options.help = true;
    } else if (arg === '--insecure') {
      options.insecure = true;
    } else if (arg.startsWith('--')) {
      const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
      if (!VALUED.includes(name)) throw new UsageError(`unknown option --${name}`);
      const value = inline !== undefined ? inline : argv[(i += 1)];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      options[name] = value;
    } else {
      positional.push(arg);
    }
  }
  const env = process.env;
  options['tls-ca'] = options['tls-ca'] || env.ENGINECTL_TLS_CA || undefined;
  options['tls-cert'] = options['tls-cert'] || env.ENGINECTL_TLS_CERT || undefined;
  options['tls-key'] = options['tls-key'] || env.ENGINECTL_TLS_KEY || undefined;
  options.token = options.token || env.ENGINECTL_TOKEN || undefined;
  return { options, positional };
}

// The host of HOST:PORT ([::1]:50051 gives ::1); as service_common/addresses.py.
function hostOf(address) {
  const target = address.replace(/^(dns|ipv4|ipv6):(\/\/[^/]*\/)?/, '');
  const match = /^(.*):(\d+)$/.exec(target);
  let host = target;
  if (match && !(match[1].includes(':') && !match[1].startsWith('['))) host = match[1];
  return host.trim().replace(/^\[/, '').replace(/\]$/, '');
}

// Whether the host only reaches this machine: 127.0.0.0/8, ::1 (IPv4-mapped too), localhost.
function isLoopback(host) {
  const h = host.toLowerCase().replace(/\.$/, '').split('%')[0];
  if (h === 'localhost') return true;
  if (net.isIPv4(h)) return h.startsWith('127.');
  if (net.isIPv6(h)) {
    const normal = new URL(`http://[${h}]/`).hostname.slice(1, -1); // e.g. ::ffff:7f00:1
    const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(normal);
    if (mapped) return (parseInt(mapped[1], 16) >> 8) === 127;
    return normal === '::1';
  }
  return false;
}

function readFile(what, file) {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new UsageError(`${what} ${file}: ${error.message}`);
  }
}

// The channel credentials, and the metadata to add to each call by hand (plaintext only:
// grpc-js refuses call credentials on an insecure channel).
function connection(address, options) {
  const token = options.token;
  const bearer = () => {
    const metadata = new grpc.Metadata();
    if (token) metadata.set('authorization', `Bearer ${token}`);
    return metadata;
  };
  if (options['tls-ca']) {
    if (!!options['tls-cert'] !== !!options['tls-key']) {
      throw new UsageError('--tls-cert and --tls-key go together (mutual TLS)');
    }
    const ca = readFile('--tls-ca', options['tls-ca']);
    const key = options['tls-key'] ? readFile('--tls-key', options['tls-key']) : null;
    const cert = options['tls-cert'] ? readFile('--tls-cert', options['tls-cert']) : null;
    let credentials = grpc.credentials.createSsl(ca, key, cert);
    if (token) {
      const perCall = grpc.credentials.createFromMetadataGenerator((_params, callback) =>
        callback(null, bearer()),
      );
      credentials = grpc.credentials.combineChannelCredentials(credentials, perCall);
    }
    return { credentials, metadata: () => new grpc.Metadata() };
  }
  if (options['tls-cert'] || options['tls-key']) {
    throw new UsageError('--tls-cert and --tls-key need --tls-ca');
  }
  if (!options.insecure && !isLoopback(hostOf(address))) {
    throw new UsageError(
      `refusing plaintext to ${address}, which is not loopback: give --tls-ca FILE ` +
        '(env ENGINECTL_TLS_CA), or --insecure to send in the clear anyway',
    );
  }
  return { credentials: grpc.credentials.createInsecure(), metadata: bearer };
}

function loadApi() {
  const definition = protoLoader.loadSync('engine_service/v1/engine_service.proto', {
    includeDirs: [protos],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  return grpc.loadPackageDefinition(definition).engine_service.v1;
}

async function main() {
  const { options, positional } = parseArgs(process.argv.slice(2));
  if (options.help) {
    console.log(HELP);
    return 0;
  }
  const [address, verb, ...args] = positional;
  if (!address || !verb) throw new UsageError(`ADDRESS and VERB are needed\n${HELP}`);
  const timeout = options.timeout !== undefined ? Number(options.timeout) : 30;
  const pageSize = options['page-size'] !== undefined ? Number(options['page-size']) : 0;
  if (!(timeout > 0)) throw new UsageError('--timeout needs a positive number of seconds');
  if (!Number.isInteger(pageSize) || pageSize < 0) {
    throw new UsageError('--page-size needs a whole number');
  }
  const { credentials, metadata } = connection(address, options);
  const api = loadApi();
  const client = new api.EngineService(address, credentials);

  const call = (method, request) =>
    new Promise((resolve, reject) => {
      const deadline = new Date(Date.now() + timeout * 1000);
      client[method](request, metadata(), { deadline }, (error, reply) =>
        error ? reject(error) : resolve(reply),
      );
    });

  // Every page of a List call, following next_page_token, as one {field: [...]}.
  const listAll = async (method, request, field) => {
    const items = [];
    let pageToken = '';
    do {
      // eslint-disable-next-line no-await-in-loop
      const reply = await call(method, { ...request, page_size: pageSize, page_token: pageToken });
      items.push(...reply[field]);
      pageToken = reply.next_page_token;
    } while (pageToken);
    return { [field]: items };
  };

  const watch = (commandId) =>
    new Promise((resolve, reject) => {
      const stream = client.WatchCommand({ command_id: commandId }, metadata());
      let last = null;
      stream.on('data', ({ command }) => {
        last = command;
        const update = {
          command_id: command.command_id,
          status: command.status,
          progress_percent: command.progress_percent,
        };
        if (command.failure_reason) update.failure_reason = command.failure_reason;
        console.log(JSON.stringify(update));
      });
      stream.on('error', reject);
      stream.on('end', () => resolve(last && last.status === 'COMMAND_STATUS_SUCCEEDED' ? 0 : 1));
    });

  const verbs = {
    'add-host': () => call('AddHost', { name: args[0], address: args[1] }),
    'list-hosts': () => listAll('ListHosts', {}, 'hosts'),
    'list-commands': () =>
      listAll('ListCommands', { status: args[0] || 'COMMAND_STATUS_UNSPECIFIED' }, 'commands'),
    'get-command': () => call('GetCommand', { command_id: args[0] }),
  };
  try {
    if (verb === 'watch') return await watch(args[0]);
    if (!verbs[verb]) {
      throw new UsageError(`unknown verb ${verb}; one of ${[...Object.keys(verbs), 'watch'].join(', ')}`);
    }
    console.log(JSON.stringify(await verbs[verb]()));
    return 0;
  } finally {
    client.close();
  }
}

main().then(
  (status) => process.exit(status),
  (error) => {
    console.error(JSON.stringify({ code: error.code, details: error.details || error.message }));
    process.exit(2);
  },
);
