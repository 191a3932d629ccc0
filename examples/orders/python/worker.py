#!/usr/bin/env python3
"""A figway worker in Python: serves orders.v1.OrderService from RabbitMQ.

Written from docs/wire-protocol.md alone, with pika and the protobuf runtime
(Debian: python3-pika, python3-protobuf). The request and reply messages come
from the descriptor set figway loads (orders.binpb), so no generated code is
needed. It takes both encodings: protobuf and protojson requests, and replies
in the content type of the request.

    python3 examples/orders/python/worker.py \
        --amqp amqp://guest:guest@127.0.0.1:5672/ --queue orders.requests

It answers like the Go worker (examples/orders/worker) and the legacy service:
the same store, the same errors. Like the Go SDK it connects again when its
connection is lost, acks without a reply a request whose reply-to names a
dead node's channel (docs/wire-protocol.md, "A reply to a dead node's
channel"), and refuses a poison request: one a quorum queue has delivered
more than --max-deliveries times (docs/wire-protocol.md, "Poison requests").
WatchOrder, server-streaming, is answered with a stream (docs/wire-protocol.md,
"Streaming replies").
"""

import argparse
import datetime
import logging
import os
import re
import signal
import sys
import threading
import time

import pika
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

# gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
OK, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, FAILED_PRECONDITION, UNIMPLEMENTED, INTERNAL = 0, 3, 4, 5, 9, 12, 13

PROTOBUF = "application/protobuf"
JSON = "application/json"
SERVICE = "orders.v1.OrderService/"
REPLY_TO = "amq.rabbitmq.reply-to"
# How long a reply-to address found gone is remembered: longer than any
# request to it waits in a queue.
GONE_FOR = 10 * 60

log = logging.getLogger("orders-worker")


class Status(Exception):
    """A gRPC status a handler answers with."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code, self.message = code, message


def load_messages(path):
    """Returns a function from a full message name to its Python class, built
    from the FileDescriptorSet at path (buf build writes files in dependency
    order, so each file's imports are in the pool before it)."""
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fd in fds.file:
        pool.Add(fd)

    def cls(name):
        desc = pool.FindMessageTypeByName(name)
        if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
            return message_factory.GetMessageClass(desc)
        return message_factory.MessageFactory(pool).GetPrototype(desc)

    return cls


# Timestamps from figway: RFC 3339 in UTC, "Z", 0 to 9 fraction digits
# (docs/wire-protocol.md). Python's datetime keeps microseconds: extra
# digits are cut, which errs on the side of an earlier deadline by < 1 µs.
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")


def parse_time(s):
    m = _RFC3339.match(s)
    if not m:
        raise ValueError("not an RFC 3339 time: %r" % s)
    base, frac, zone = m.groups()
    t = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    if frac:
        t = t.replace(microsecond=int(frac[:6].ljust(6, "0")))
    if zone == "Z":
        return t.replace(tzinfo=datetime.timezone.utc)
    sign = 1 if zone[0] == "+" else -1
    off = datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return t.replace(tzinfo=datetime.timezone(sign * off))


def header_str(headers, key):
    """A header's value as a str: figway sends strings as AMQP long strings,
    which pika hands over as bytes or str depending on its version."""
    v = (headers or {}).get(key)
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return v


class Store:
    """The demo's orders, as examples/orders/store keeps them."""

    def __init__(self, msg):
        self.msg = msg
        self.Order = msg("orders.v1.Order")
        self.lock = threading.Lock()
        self.by_request = {}
        seed = self.Order(order_id="o-1", customer_id="c-1", status=1, total_cents=2 * 1250 + 8900, note="seeded")
        seed.items.add(sku="sku-espresso-beans", quantity=2, unit_price_cents=1250)
        seed.items.add(sku="sku-grinder", quantity=1, unit_price_cents=8900)
        seeded = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
        seed.created_at.FromDatetime(seeded)
        seed.updated_at.FromDatetime(seeded)
        self.orders = {"o-1": seed}

    def _find(self, order_id):
        if not order_id:
            raise Status(INVALID_ARGUMENT, "order_id is required")
        o = self.orders.get(order_id)
        if o is None:
            raise Status(NOT_FOUND, 'order "%s" not found' % order_id)
        return o

    def get_order(self, req, ctx):
        with self.lock:
            return self._copy(self._find(req.order_id))

    def list_orders(self, req, ctx):
        size = req.page_size
        if size < 0:
            raise Status(INVALID_ARGUMENT, "page_size %d is negative" % size)
        size = 50 if size == 0 else min(size, 500)
        with self.lock:
            match = [o for o in self.orders.values()
                     if (not req.customer_id or o.customer_id == req.customer_id)
                     and (req.status == 0 or o.status == req.status)]
            match.sort(key=lambda o: (o.created_at.ToNanoseconds(), o.order_id), reverse=True)
            if req.page_token:
                ids = [o.order_id for o in match]
                if req.page_token not in ids:
                    raise Status(INVALID_ARGUMENT, 'page_token "%s" is not from this query' % req.page_token)
                match = match[ids.index(req.page_token) + 1:]
            resp = self.msg("orders.v1.ListOrdersResponse")()
            for o in match[:size]:
                resp.orders.add().CopyFrom(o)
            if len(match) > size:
                resp.next_page_token = match[size - 1].order_id
            return resp

    def place_order(self, req, ctx):
        if not req.customer_id:
            raise Status(INVALID_ARGUMENT, "customer_id is required")
        if not req.items:
            raise Status(INVALID_ARGUMENT, "an order needs at least one item")
        total = 0
        for i, it in enumerate(req.items):
            if not it.sku or it.quantity < 1 or it.unit_price_cents < 0:
                raise Status(INVALID_ARGUMENT, "items[%d]: want a sku, quantity ≥ 1 and unit_price_cents ≥ 0" % i)
            total += it.quantity * it.unit_price_cents
        # The order takes the event id figway gave the call, so the caller,
        # who got it as figway-event-id, can GetOrder it.
        oid = ctx["message_id"] or "o-" + os.urandom(12).hex()
        with self.lock:
            oid = self.by_request.get(req.request_id, oid) if req.request_id else oid
            if oid in self.orders:
                return self._copy(self.orders[oid])
            o = self.Order(order_id=oid, customer_id=req.customer_id, status=1, total_cents=total, note=req.note)
            o.items.extend(req.items)
            o.created_at.GetCurrentTime()
            o.updated_at.CopyFrom(o.created_at)
            self.orders[oid] = o
            if req.request_id:
                self.by_request[req.request_id] = oid
            log.info("order placed: %s", oid)
            return self._copy(o)

    def cancel_order(self, req, ctx):
        with self.lock:
            o = self._find(req.order_id)
            if o.status == 3:
                raise Status(FAILED_PRECONDITION, 'order "%s" has shipped and can no longer be cancelled' % o.order_id)
            if o.status != 4:
                o.status = 4
                o.updated_at.GetCurrentTime()
            return self._copy(o)

    def watch_event(self, req):
        """WatchOrder's event of the order's status now."""
        with self.lock:
            o = self._find(req.order_id)
            return self.msg("orders.v1.OrderEvent")(order_id=o.order_id, status=o.status, at=o.updated_at)

    def _copy(self, o):
        c = self.Order()
        c.CopyFrom(o)
        return c


def delivery_count(headers):
    """The number of earlier deliveries a quorum queue counted
    (x-delivery-count) plus those a copy set aside by another worker
    carries (figway-delivery-count), or None when nothing counts."""

    def count(v):
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    queued = count((headers or {}).get("x-delivery-count"))
    carried = count((headers or {}).get("figway-delivery-count"))
    if queued is None and carried is None:
        return None
    return (queued or 0) + (carried or 0)


class Worker:
    def __init__(self, store, msg, prefetch, max_deliveries=3, watch_every=1.0, watch_count=10):
        self.msg = msg
        self.store = store
        self.watch_every, self.watch_count = watch_every, watch_count
        self.prefetch = prefetch
        self.max_deliveries = max_deliveries  # 0 or less: never refuse
        self.poisoned = 0  # poison requests refused
        self.gone = {}  # reply-to address → when a reply to it closed the connection
        self.dropped = 0  # replies dropped because their address was gone
        self.handlers = {
            "GetOrder": ("orders.v1.GetOrderRequest", store.get_order),
            "ListOrders": ("orders.v1.ListOrdersRequest", store.list_orders),
            "PlaceOrder": ("orders.v1.PlaceOrderRequest", store.place_order),
            "CancelOrder": ("orders.v1.CancelOrderRequest", store.cancel_order),
        }

    def on_request(self, ch, method, props, body):
        rpc = bool(props.reply_to)
        deadline = header_str(props.headers, "figway-deadline")
        if rpc and deadline:
            try:
                if parse_time(deadline) <= datetime.datetime.now(datetime.timezone.utc):
                    # figway has answered DEADLINE_EXCEEDED already: nobody
                    # reads a reply. Drop the request.
                    ch.basic_ack(method.delivery_tag)
                    return
            except ValueError as e:
                log.warning("bad figway-deadline: %s", e)
        content_type = props.content_type or PROTOBUF
        count = delivery_count(props.headers)
        poison = count is not None and 0 < self.max_deliveries <= count
        if rpc and not poison and props.type == SERVICE + "WatchOrder":
            self.stream(ch, method, props, body, content_type)
            return
        try:
            if poison:
                # Delivered more than max_deliveries times, never settled:
                # it took its worker down each time. Not run again.
                self.poisoned += 1
                log.error("poison request: %s delivered %d times before; not run, rejected "
                          "(correlation_id %s, message_id %s; %d refused)",
                          props.type, count, props.correlation_id, props.message_id, self.poisoned)
                raise Status(INTERNAL, "poison request: delivered %d times before, and never settled; not run again" % count)
            body, code, message = self.handle(props, body, content_type), OK, ""
        except Status as s:
            body, code, message = b"", s.code, s.message
        except Exception as e:  # a bug in a handler: INTERNAL, not a crash
            log.exception("handler failed")
            body, code, message = b"", INTERNAL, "internal error: %s" % type(e).__name__
        if not rpc:
            # An event: acknowledged once handled; a failed one is rejected
            # (dead-lettered, if its queue has a dead-letter exchange).
            if code == OK:
                ch.basic_ack(method.delivery_tag)
            else:
                log.warning("event failed: %s", message)
                ch.basic_reject(method.delivery_tag, requeue=False)
            return
        if self.is_gone(props.reply_to):
            # A reply to this address closed the connection before: the
            # caller's channel is gone, and nobody can receive the reply.
            self.dropped += 1
            log.warning("reply dropped: reply-to %s is gone (correlation_id %s; %d dropped)",
                        props.reply_to, props.correlation_id, self.dropped)
            self.settle(ch, method, poison)
            return
        headers = {}
        if code != OK:
            headers = {"figway-status": code, "figway-message": message}

        def reply():
            ch.basic_publish(
                exchange="",
                routing_key=props.reply_to,
                properties=pika.BasicProperties(correlation_id=props.correlation_id, content_type=content_type,
                                                headers=headers),
                body=body)

        if method.redelivered and props.reply_to.startswith(REPLY_TO + "."):
            self.reply_alone(ch, props.reply_to, reply)
        else:
            reply()
        # Ack after the reply is out: if the worker dies in between, the
        # request is redelivered (at-least-once).
        self.settle(ch, method, poison)

    def stream(self, ch, method, props, body, content_type):
        """Answers WatchOrder, a server-streaming method, with a stream
        (docs/wire-protocol.md, "Streaming replies"): the order's status now
        and then every --watch-every seconds, --watch-count events in all,
        each a message numbered by figway-seq from 0, then the end: one more
        number, figway-end, and the status. The events are sent from the
        connection's timers, so that the worker serves other requests in
        between. It ignores cancels, which the protocol allows, and stops at
        the call's deadline, when figway has given up on the stream."""
        seq = 0
        deadline = header_str(props.headers, "figway-deadline")
        try:
            deadline = parse_time(deadline) if deadline else None
            req = self.decode("orders.v1.WatchOrderRequest", body, content_type)
        except (Status, ValueError) as e:
            code, message = (e.code, e.message) if isinstance(e, Status) else (INVALID_ARGUMENT, str(e))
            deadline, req = None, None

        def publish(body, headers):
            ch.basic_publish(exchange="", routing_key=props.reply_to, body=body,
                             properties=pika.BasicProperties(correlation_id=props.correlation_id,
                                                             content_type=content_type, headers=headers))

        def end(code, message):
            headers = {"figway-seq": seq, "figway-end": True}
            if code != OK:
                headers.update({"figway-status": code, "figway-message": message})
            publish(b"", headers)
            ch.basic_ack(method.delivery_tag)  # after the end: a worker that dies mid-stream leaves it for redelivery

        def step():
            nonlocal seq
            if not ch.is_open:
                return  # the connection was lost: the request is redelivered
            if deadline is not None and deadline <= datetime.datetime.now(datetime.timezone.utc):
                ch.basic_ack(method.delivery_tag)  # figway has ended the call already
                return
            try:
                ev = self.store.watch_event(req)
            except Status as s:
                end(s.code, s.message)
                return
            publish(self.encode(ev, content_type), {"figway-seq": seq})
            seq += 1
            if seq == self.watch_count:
                end(OK, "")
            else:
                ch.connection.call_later(self.watch_every, step)

        if req is None:
            end(code, message)
        else:
            step()

    @staticmethod
    def settle(ch, method, poison):
        """Acks a request; a poison one is rejected without requeue instead,
        so that a queue with a dead-letter exchange keeps it."""
        if poison:
            ch.basic_reject(method.delivery_tag, requeue=False)
        else:
            ch.basic_ack(method.delivery_tag)

    def reply_alone(self, ch, reply_to, reply):
        """Replies to a redelivered request with nothing else of the channel
        in flight (docs/wire-protocol.md, "A reply to a dead node's channel").
        RabbitMQ 3.10 closes the connection of a worker that replies to a
        direct reply-to address whose node has died, and redelivers the
        request, which would close the next connection the same way until it
        expires. A basic.qos (the prefetch the channel has already) before
        the reply makes sure what went before it was taken; one after it is
        answered only if the reply did not close the connection. If it did,
        the address is remembered as gone, and when the request comes again
        it is acked without a reply."""
        ch.basic_qos(prefetch_count=self.prefetch)
        reply()
        try:
            ch.basic_qos(prefetch_count=self.prefetch)
        except pika.exceptions.AMQPError:
            now = time.monotonic()
            self.gone = {a: at for a, at in self.gone.items() if now - at <= GONE_FOR}
            self.gone[reply_to] = now
            raise

    def is_gone(self, reply_to):
        at = self.gone.get(reply_to)
        return at is not None and time.monotonic() - at <= GONE_FOR

    def handle(self, props, body, content_type):
        name = (props.type or "")
        if not name.startswith(SERVICE) or name[len(SERVICE):] not in self.handlers:
            raise Status(UNIMPLEMENTED, "method %s not implemented by this worker" % name)
        req_name, handler = self.handlers[name[len(SERVICE):]]
        req = self.decode(req_name, body, content_type)
        resp = handler(req, {"message_id": props.message_id})
        return self.encode(resp, content_type)

    def decode(self, name, body, content_type):
        req = self.msg(name)()
        try:
            if content_type == JSON:
                json_format.Parse(body or b"{}", req, ignore_unknown_fields=True)
            else:
                req.ParseFromString(body)
        except Exception as e:
            raise Status(INVALID_ARGUMENT, "request does not decode: %s" % e)
        return req

    @staticmethod
    def encode(resp, content_type):
        if content_type == JSON:
            return json_format.MessageToJson(resp, indent=None).encode("utf-8")
        return resp.SerializeToString()


def serve(args, worker):
    """Consumes args.queue until SIGTERM or SIGINT. When the connection is
    lost it connects again a second later, keeping the worker (its store,
    and the reply-to addresses found gone)."""
    params = pika.URLParameters(args.amqp)
    params.heartbeat = 10
    stopping, ready, ch = False, False, None

    def stop(*_):
        nonlocal stopping
        stopping = True
        if ch is not None and ch.is_open:
            ch.connection.add_callback_threadsafe(ch.stop_consuming)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        conn = ch = None
        try:
            conn = pika.BlockingConnection(params)
            ch = conn.channel()
            # The queue as figway's topology declares it in figway.yaml
            # (durable, classic unless --queue-type, no arguments): a
            # declare with other arguments fails with PRECONDITION_FAILED.
            # Whoever starts first creates it.
            ch.exchange_declare("orders", exchange_type="topic", durable=True)
            queue_args = {"x-queue-type": "quorum"} if args.queue_type == "quorum" else None
            ch.queue_declare(args.queue, durable=True, arguments=queue_args)
            ch.queue_bind(args.queue, "orders", routing_key="orders.#")
            ch.basic_qos(prefetch_count=args.prefetch)
            ch.basic_consume(args.queue, worker.on_request)
            log.info("connected: consuming %s", args.queue)
            if not ready:
                print("ready", flush=True)
                ready = True
            if not stopping:
                ch.start_consuming()
        except pika.exceptions.AMQPError as e:
            log.warning("connection to the broker lost or refused (%r); connecting again in 1s", e)
        if conn is not None and conn.is_open:
            conn.close()
        if not stopping:
            time.sleep(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/", help="RabbitMQ URL")
    p.add_argument("--queue", default="orders.requests", help="queue to consume")
    p.add_argument("--descriptors", default=os.path.join(os.path.dirname(__file__), "..", "orders.binpb"),
                   help="the FileDescriptorSet figway loads")
    p.add_argument("--prefetch", type=int, default=32)
    p.add_argument("--queue-type", choices=["classic", "quorum"], default="classic",
                   help="type of the queue, as figway's topology declares it")
    p.add_argument("--max-deliveries", type=int, default=3,
                   help="refuse a request a quorum queue delivered more than this many times (0: never)")
    p.add_argument("--watch-every", type=float, default=1.0, help="seconds between two events of WatchOrder's stream")
    p.add_argument("--watch-count", type=int, default=10, help="events in a WatchOrder stream")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # pika logs each connect, and each failure with a traceback; serve logs
    # a lost or refused connection once.
    logging.getLogger("pika").setLevel(logging.CRITICAL)

    msg = load_messages(args.descriptors)
    log.info("orders worker (python) for %s", args.queue)
    serve(args, Worker(Store(msg), msg, args.prefetch, args.max_deliveries, args.watch_every, args.watch_count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
