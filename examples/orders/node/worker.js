#!/usr/bin/env node
// A figway worker in Node.js: serves orders.v1.OrderService from RabbitMQ.
//
// Written from docs/wire-protocol.md alone, with amqplib and nothing else:
// its routes use `encoding: json`, so requests and replies are protojson
// (lowerCamelCase names, int64 as strings, enums by name, timestamps in
// RFC 3339) and no protobuf runtime is needed.
//
//   node examples/orders/node/worker.js --amqp amqp://guest:guest@127.0.0.1:5672/ --queue orders.requests
//
// It answers like the Go worker (examples/orders/worker) and the legacy
// service: the same store, the same errors. Like the Go SDK it connects
// again when its connection is lost, acks without a reply a request whose
// reply-to names a dead node's channel (docs/wire-protocol.md, "A reply to
// a dead node's channel"), and refuses a poison request: one a quorum queue
// has delivered more than --max-deliveries times (docs/wire-protocol.md,
// "Poison requests"). WatchOrder, server-streaming, is answered with a
// stream (docs/wire-protocol.md, "Streaming replies").
'use strict';

const amqp = require('amqplib');
const crypto = require('node:crypto');
const { parseArgs } = require('node:util');

// gRPC status codes.
const OK = 0, INVALID_ARGUMENT = 3, NOT_FOUND = 5, FAILED_PRECONDITION = 9, UNIMPLEMENTED = 12, INTERNAL = 13;
const SERVICE = 'orders.v1.OrderService/';
const REPLY_TO = 'amq.rabbitmq.reply-to';
// How long a reply-to address found gone is remembered: longer than any
// request to it waits in a queue.
const GONE_FOR_MS = 10 * 60 * 1000;

class Status extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// Timestamps from figway: RFC 3339 in UTC with "Z" and 0 to 9 fraction
// digits (docs/wire-protocol.md). Returns milliseconds since the epoch;
// digits past the millisecond are cut.
const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;
function parseTime(s) {
  const m = RFC3339.exec(s);
  if (!m) throw new Error(`not an RFC 3339 time: ${s}`);
  const ms = m[2] ? m[2].slice(0, 3).padEnd(3, '0') : '000';
  return Date.parse(`${m[1]}.${ms}${m[3]}`);
}

// A header's value as a string: figway sends long strings, which amqplib
// hands over as strings (or Buffers, for byte arrays).
function headerString(headers, key) {
  const v = headers && headers[key];
  return Buffer.isBuffer(v) ? v.toString('utf8') : v;
}

const STATUS = ['ORDER_STATUS_UNSPECIFIED', 'ORDER_STATUS_PLACED', 'ORDER_STATUS_PAID', 'ORDER_STATUS_SHIPPED', 'ORDER_STATUS_CANCELLED'];
// protojson accepts an enum by name or number.
function statusName(v) {
  if (v === undefined || v === null) return STATUS[0];
  return typeof v === 'number' ? STATUS[v] : v;
}

// The demo's orders, as examples/orders/store keeps them. Orders are kept
// in protojson form; created is the creation time in ms, for sorting.
class Store {
  constructor() {
    const seeded = '2026-01-02T03:04:05Z';
    this.byRequest = new Map();
    this.orders = new Map([['o-1', {
      json: {
        orderId: 'o-1', customerId: 'c-1',
        items: [
          { sku: 'sku-espresso-beans', quantity: 2, unitPriceCents: '1250' },
          { sku: 'sku-grinder', quantity: 1, unitPriceCents: '8900' },
        ],
        status: 'ORDER_STATUS_PLACED', totalCents: String(2 * 1250 + 8900), note: 'seeded',
        createdAt: seeded, updatedAt: seeded,
      },
      created: Date.parse(seeded),
    }]]);
  }

  find(id) {
    if (!id) throw new Status(INVALID_ARGUMENT, 'order_id is required');
    const o = this.orders.get(id);
    if (!o) throw new Status(NOT_FOUND, `order "${id}" not found`);
    return o;
  }

  GetOrder(req) {
    return this.find(req.orderId).json;
  }

  // watchEvent is WatchOrder's event of the order's status now.
  watchEvent(req) {
    const o = this.find(req.orderId).json;
    return { orderId: o.orderId, status: o.status, at: o.updatedAt };
  }

  ListOrders(req) {
    let size = Number(req.pageSize || 0);
    if (size < 0) throw new Status(INVALID_ARGUMENT, `page_size ${size} is negative`);
    size = size === 0 ? 50 : Math.min(size, 500);
    const want = statusName(req.status);
    let match = [...this.orders.values()].filter((o) =>
      (!req.customerId || o.json.customerId === req.customerId) &&
      (want === STATUS[0] || o.json.status === want));
    match.sort((a, b) => (b.created - a.created) || (b.json.orderId < a.json.orderId ? -1 : b.json.orderId > a.json.orderId ? 1 : 0));
    if (req.pageToken) {
      const i = match.findIndex((o) => o.json.orderId === req.pageToken);
      if (i < 0) throw new Status(INVALID_ARGUMENT, `page_token "${req.pageToken}" is not from this query`);
      match = match.slice(i + 1);
    }
    const resp = { orders: match.slice(0, size).map((o) => o.json) };
    if (match.length > size) resp.nextPageToken = match[size - 1].json.orderId;
    return resp;
  }

  PlaceOrder(req, ctx) {
    if (!req.customerId) throw new Status(INVALID_ARGUMENT, 'customer_id is required');
    const items = req.items || [];
    if (items.length === 0) throw new Status(INVALID_ARGUMENT, 'an order needs at least one item');
    let total = 0n;
    items.forEach((it, i) => {
      const qty = Number(it.quantity || 0), price = BigInt(it.unitPriceCents || 0);
      if (!it.sku || qty < 1 || price < 0n) {
        throw new Status(INVALID_ARGUMENT, `items[${i}]: want a sku, quantity ≥ 1 and unit_price_cents ≥ 0`);
      }
      total += BigInt(qty) * price;
    });
    // The order takes the event id figway gave the call, so the caller,
    // who got it as figway-event-id, can GetOrder it.
    let id = ctx.messageId || 'o-' + crypto.randomBytes(12).toString('hex');
    if (req.requestId && this.byRequest.has(req.requestId)) id = this.byRequest.get(req.requestId);
    if (this.orders.has(id)) return this.orders.get(id).json;
    const now = new Date();
    const json = {
      orderId: id, customerId: req.customerId,
      items: items.map((it) => ({ sku: it.sku, quantity: Number(it.quantity), unitPriceCents: String(it.unitPriceCents || 0) })),
      status: 'ORDER_STATUS_PLACED', totalCents: String(total),
      createdAt: now.toISOString(), updatedAt: now.toISOString(),
    };
    if (req.note) json.note = req.note;
    this.orders.set(id, { json, created: now.getTime() });
    if (req.requestId) this.byRequest.set(req.requestId, id);
    console.error(`order placed: ${id}`);
    return json;
  }

  CancelOrder(req) {
    const o = this.find(req.orderId);
    if (o.json.status === 'ORDER_STATUS_SHIPPED') {
      throw new Status(FAILED_PRECONDITION, `order "${o.json.orderId}" has shipped and can no longer be cancelled`);
    }
    if (o.json.status !== 'ORDER_STATUS_CANCELLED') {
      o.json.status = 'ORDER_STATUS_CANCELLED';
      o.json.updatedAt = new Date().toISOString();
    }
    return o.json;
  }
}

// handle runs one request and returns [body, code, message].
function handle(store, msg) {
  const method = msg.properties.type || '';
  const name = method.startsWith(SERVICE) ? method.slice(SERVICE.length) : '';
  if (!['GetOrder', 'ListOrders', 'PlaceOrder', 'CancelOrder'].includes(name)) {
    return [Buffer.alloc(0), UNIMPLEMENTED, `method ${method} not implemented by this worker`];
  }
  if (msg.properties.contentType !== 'application/json') {
    return [Buffer.alloc(0), INVALID_ARGUMENT, 'this worker takes application/json: route it with encoding: json'];
  }
  let req;
  try {
    req = msg.content.length ? JSON.parse(msg.content.toString('utf8')) : {};
  } catch (e) {
    return [Buffer.alloc(0), INVALID_ARGUMENT, `request does not decode: ${e.message}`];
  }
  try {
    const resp = store[name](req, { messageId: msg.properties.messageId });
    return [Buffer.from(JSON.stringify(resp)), OK, ''];
  } catch (e) {
    if (e instanceof Status) return [Buffer.alloc(0), e.code, e.message];
    console.error('handler failed', e);
    return [Buffer.alloc(0), INTERNAL, `internal error: ${e.name}`];
  }
}

// Worker answers the requests of one queue. It outlives connections: the
// store, and the reply-to addresses found gone, are kept across them.
// deliveryCount returns the number of earlier deliveries a quorum queue
// counted (x-delivery-count) plus those a copy set aside by another worker
// carries (figway-delivery-count), or null when nothing counts.
function deliveryCount(headers) {
  const count = (v) => (Number.isInteger(v) && v >= 0 ? v : null);
  const queued = count(headers?.['x-delivery-count']);
  const carried = count(headers?.['figway-delivery-count']);
  if (queued === null && carried === null) return null;
  return (queued ?? 0) + (carried ?? 0);
}

class Worker {
  constructor(store, prefetch, maxDeliveries = 3, watchEveryMs = 1000, watchCount = 10) {
    this.store = store;
    this.watchEveryMs = watchEveryMs;
    this.watchCount = watchCount;
    this.prefetch = prefetch;
    this.maxDeliveries = maxDeliveries; // 0 or less: never refuse
    this.poisoned = 0; // poison requests refused
    this.gone = new Map(); // reply-to address → when a reply to it closed the connection
    this.dropped = 0; // replies dropped because their address was gone
  }

  // serve handles one delivery on ch; the caller runs one at a time.
  async serve(ch, msg) {
    const p = msg.properties;
    const rpc = Boolean(p.replyTo);
    const deadline = headerString(p.headers, 'figway-deadline');
    if (rpc && deadline) {
      try {
        // figway has answered DEADLINE_EXCEEDED already: drop the request.
        if (parseTime(deadline) <= Date.now()) { ch.ack(msg); return; }
      } catch (e) {
        console.error(`bad figway-deadline: ${e.message}`);
      }
    }
    const count = deliveryCount(p.headers);
    const poison = count !== null && this.maxDeliveries > 0 && count >= this.maxDeliveries;
    if (rpc && !poison && p.type === `${SERVICE}WatchOrder`) {
      this.stream(ch, msg, deadline ? parseTime(deadline) : null);
      return; // the stream goes on from timers; the next request is served meanwhile
    }
    let body, code, message;
    if (poison) {
      // Delivered more than maxDeliveries times, never settled: it took
      // its worker down each time. Not run again.
      this.poisoned++;
      console.error(`poison request: ${p.type} delivered ${count} times before; not run, rejected ` +
        `(correlation_id ${p.correlationId}, message_id ${p.messageId}; ${this.poisoned} refused)`);
      [body, code, message] = [Buffer.alloc(0), INTERNAL, `poison request: delivered ${count} times before, and never settled; not run again`];
    } else {
      [body, code, message] = handle(this.store, msg);
    }
    // A poison request is rejected without requeue, so that a queue with
    // a dead-letter exchange keeps it; any other is acked.
    const settle = () => (poison ? ch.reject(msg, false) : ch.ack(msg));
    if (!rpc) { // an event: acked once handled, rejected (dead-lettered) if it failed
      if (code === OK) ch.ack(msg); else { console.error(`event failed: ${message}`); ch.reject(msg, false); }
      return;
    }
    if (this.isGone(p.replyTo)) {
      // A reply to this address closed the connection before: the caller's
      // channel is gone, and nobody can receive the reply.
      this.dropped++;
      console.error(`reply dropped: reply-to ${p.replyTo} is gone (correlation_id ${p.correlationId}; ${this.dropped} dropped)`);
      settle();
      return;
    }
    const headers = code === OK ? {} : { 'figway-status': code, 'figway-message': message };
    const reply = () => ch.sendToQueue(p.replyTo, body, { correlationId: p.correlationId, contentType: 'application/json', headers });
    if (msg.fields.redelivered && p.replyTo.startsWith(`${REPLY_TO}.`)) {
      await this.replyAlone(ch, p.replyTo, reply);
    } else {
      reply();
    }
    // Ack after the reply is out: a worker dying in between gets the
    // request redelivered (at-least-once).
    settle();
  }

  // stream answers WatchOrder, a server-streaming method, with a stream
  // (docs/wire-protocol.md, "Streaming replies"): the order's status now
  // and then every --watch-every-ms, --watch-count events in all, each a
  // message numbered by figway-seq from 0, then the end: one more number,
  // figway-end, and the status. It ignores cancels, which the protocol
  // allows, and stops at the call's deadline, when figway has given up.
  stream(ch, msg, deadline) {
    const p = msg.properties;
    const publish = (body, headers) => ch.sendToQueue(p.replyTo, body,
      { correlationId: p.correlationId, contentType: 'application/json', headers });
    let seq = 0;
    const end = (code, message) => {
      const headers = { 'figway-seq': seq, 'figway-end': true };
      if (code !== OK) Object.assign(headers, { 'figway-status': code, 'figway-message': message });
      publish(Buffer.alloc(0), headers);
      ch.ack(msg); // after the end: a worker that dies mid-stream leaves it for redelivery
    };
    let req;
    if (p.contentType !== 'application/json') {
      end(INVALID_ARGUMENT, 'this worker takes application/json: route it with encoding: json');
      return;
    }
    try {
      req = msg.content.length ? JSON.parse(msg.content.toString('utf8')) : {};
    } catch (e) {
      end(INVALID_ARGUMENT, `request does not decode: ${e.message}`);
      return;
    }
    const step = () => {
      try {
        if (deadline !== null && deadline <= Date.now()) { ch.ack(msg); return; } // figway has ended the call
        let ev;
        try {
          ev = this.store.watchEvent(req);
        } catch (e) {
          if (!(e instanceof Status)) throw e;
          end(e.code, e.message);
          return;
        }
        publish(Buffer.from(JSON.stringify(ev)), { 'figway-seq': seq });
        seq++;
        if (seq === this.watchCount) end(OK, ''); else setTimeout(step, this.watchEveryMs);
      } catch (e) { // the channel closed: the request is redelivered
        console.error(`stream stopped: ${e.message}`);
      }
    };
    step();
  }

  // replyAlone replies to a redelivered request with nothing else of the
  // channel in flight (docs/wire-protocol.md, "A reply to a dead node's
  // channel"). RabbitMQ 3.10 closes the connection of a worker that replies
  // to a direct reply-to address whose node has died, and redelivers the
  // request, which would close the next connection the same way until it
  // expires. A basic.qos (the prefetch the channel has already) before the
  // reply makes sure what went before it was taken; one after it is
  // answered only if the reply did not close the connection. If it did, the
  // address is remembered as gone, and when the request comes again it is
  // acked without a reply.
  async replyAlone(ch, replyTo, reply) {
    await ch.prefetch(this.prefetch);
    reply();
    try {
      await ch.prefetch(this.prefetch);
    } catch (e) {
      const now = Date.now();
      for (const [addr, at] of this.gone) if (now - at > GONE_FOR_MS) this.gone.delete(addr);
      this.gone.set(replyTo, now);
      throw e;
    }
  }

  isGone(replyTo) {
    const at = this.gone.get(replyTo);
    return at !== undefined && Date.now() - at <= GONE_FOR_MS;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const { values: args } = parseArgs({
    options: {
      amqp: { type: 'string', default: 'amqp://guest:guest@127.0.0.1:5672/' },
      queue: { type: 'string', default: 'orders.requests' },
      prefetch: { type: 'string', default: '32' },
      'queue-type': { type: 'string', default: 'classic' }, // as figway's topology declares it
      'max-deliveries': { type: 'string', default: '3' }, // 0: never refuse
      'watch-every-ms': { type: 'string', default: '1000' }, // between two events of a WatchOrder stream
      'watch-count': { type: 'string', default: '10' }, // events in a WatchOrder stream
    },
  });
  const worker = new Worker(new Store(), Number(args.prefetch), Number(args['max-deliveries']),
    Number(args['watch-every-ms']), Number(args['watch-count']));
  let conn = null, stopping = false;
  const stop = async () => {
    stopping = true;
    try { await conn?.close(); } catch (e) { /* closing anyway */ }
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  console.error(`orders worker (node) for ${args.queue}`);

  // Connect, consume until the channel or the connection is lost, and
  // connect again a second later.
  for (let ready = false; !stopping; await sleep(1000)) {
    try {
      // amqplib leaves Nagle's algorithm on unless told: small replies
      // would wait for the previous packet's ACK (~20x the p50 of a call).
      conn = await amqp.connect(args.amqp, { noDelay: true });
      conn.on('error', (e) => console.error(`connection error: ${e.message}`));
      const ch = await conn.createChannel();
      ch.on('error', (e) => console.error(`channel error: ${e.message}`));
      const closed = new Promise((resolve) => ch.on('close', resolve)); // with its connection too
      // The queue as figway's topology declares it (durable, classic unless
      // --queue-type, no arguments): a declare with other arguments fails
      // with PRECONDITION_FAILED.
      await ch.assertExchange('orders', 'topic', { durable: true });
      const queueArgs = args['queue-type'] === 'quorum' ? { 'x-queue-type': 'quorum' } : {};
      await ch.assertQueue(args.queue, { durable: true, arguments: queueArgs });
      await ch.bindQueue(args.queue, 'orders', 'orders.#');
      await ch.prefetch(worker.prefetch);
      // One delivery at a time, in order: a reply sent alone must have the
      // channel to itself.
      let turn = Promise.resolve();
      await ch.consume(args.queue, (msg) => {
        if (msg === null) { // cancelled by the broker (queue deleted)
          console.error('consumer cancelled by the broker');
          process.exit(1);
        }
        turn = turn.then(() => worker.serve(ch, msg))
          .catch((e) => console.error(`request not settled; the broker will redeliver it: ${e.message}`));
      }, { noAck: false });
      console.error(`connected: consuming ${args.queue}`);
      if (!ready) {
        console.log('ready');
        ready = true;
      }
      await closed;
    } catch (e) {
      console.error(`connection to the broker lost or refused: ${e.message}`);
    }
    if (stopping) break;
    try { await conn?.close(); } catch (_) { /* closed already */ }
    console.error('connecting again in 1s');
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
