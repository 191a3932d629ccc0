package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	"github.com/ThreeDotsLabs/watermill/components/cqrs"
	"github.com/ThreeDotsLabs/watermill/components/requestreply"
	"github.com/ThreeDotsLabs/watermill/message"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	ordersv1 "github.com/figway/figway/gen/orders/v1"
)

// The watermill-bridge scenario: the bridge a Go team would write by hand
// with Watermill instead of running figway — a grpc-go unary server whose
// handler sends the request as a command through Watermill's CQRS command
// bus and waits for the reply with its request-reply component
// (components/requestreply, PubSubBackend), and a Watermill router with a
// request-reply command handler as the worker, over watermill-amqp. It is
// configured as Watermill's documentation and its request-reply tests show:
//
//   - commands go to a durable queue named after the command
//     (wamqp.NewDurableQueueConfig), in protobuf (cqrs.ProtoMarshaler);
//   - each call listens for its reply on a topic of its own, named after
//     its operation id: PubSubBackend subscribes before it sends, and
//     only a reply topic per call keeps one call's reply from being taken
//     by another call's subscription (on one shared queue, RabbitMQ would
//     hand replies to waiting consumers round-robin). The reply queues are
//     non-durable (wamqp.NewNonDurableQueueConfig) and auto-delete, so
//     none outlives its call;
//   - publishers keep a pool of channels (PublishConfig.ChannelPoolSize)
//     rather than open one per publish, the watermill-amqp default;
//   - replies are JSON (requestreply.BackendPubsubJSONMarshaler, the
//     marshaler the component ships).
//
// The worker side runs as many routers as figway's scenarios run SDK
// workers: watermill-amqp hands a subscription's next message to the
// router only once the previous one is acked, so each router serves one
// request at a time.
const (
	watermillEnv      = "FIGWAY_BENCH_WATERMILL" // "<grpc addr> <amqp url>": be the bridge
	watermillCommands = "bench.watermill."       // + command name: the commands' queue
	watermillReplies  = "bench.watermill.reply." // + operation id: one call's reply queue
)

// watermillPool is the channel pool of each Watermill publisher: one per
// concurrent caller at c=64.
const watermillPool = 64

func watermillLogger() watermill.LoggerAdapter { return watermill.NopLogger{} }

func commandTopic(p cqrs.CommandBusGeneratePublishTopicParams) (string, error) {
	return watermillCommands + p.CommandName, nil
}

// replyBackend is the request-reply backend of both sides: the bridge
// subscribes to a call's reply topic, the worker publishes to it.
func replyBackend(pub message.Publisher, sub message.Subscriber) (*requestreply.PubSubBackend[*ordersv1.Order], error) {
	return requestreply.NewPubSubBackend(requestreply.PubSubBackendConfig{
		Publisher: pub,
		SubscriberConstructor: func(requestreply.PubSubBackendSubscribeParams) (message.Subscriber, error) {
			return sub, nil
		},
		GenerateSubscribeTopic: func(p requestreply.PubSubBackendSubscribeParams) (string, error) {
			return watermillReplies + string(p.OperationID), nil
		},
		GeneratePublishTopic: func(p requestreply.PubSubBackendPublishParams) (string, error) {
			return watermillReplies + string(p.OperationID), nil
		},
		Logger:           watermillLogger(),
		AckCommandErrors: true, // an error is a reply, not a reason to redeliver
	}, requestreply.BackendPubsubJSONMarshaler[*ordersv1.Order]{})
}

func replyQueueConfig(url string) wamqp.Config {
	c := wamqp.NewNonDurableQueueConfig(url)
	c.Queue.AutoDelete = true
	c.Publish.ChannelPoolSize = watermillPool
	return c
}

// watermillBridge is the gRPC server of the bridge.
type watermillBridge struct {
	ordersv1.UnimplementedOrderServiceServer
	bus     *cqrs.CommandBus
	backend *requestreply.PubSubBackend[*ordersv1.Order]
}

func (b *watermillBridge) GetOrder(ctx context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
	reply, err := requestreply.SendWithReply(ctx, b.bus, b.backend, req)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	if reply.Error != nil {
		return nil, status.Error(codes.Unknown, reply.Error.Error())
	}
	return reply.HandlerResult, nil
}

// exitServingWatermill runs the bridge on addr against the broker at url
// until killed.
func exitServingWatermill(spec string) {
	addr, url, _ := strings.Cut(spec, " ")
	err := func() error {
		cmdCfg := wamqp.NewDurableQueueConfig(url)
		cmdCfg.Publish.ChannelPoolSize = watermillPool
		pub, err := wamqp.NewPublisher(cmdCfg, watermillLogger())
		if err != nil {
			return err
		}
		bus, err := cqrs.NewCommandBusWithConfig(pub, cqrs.CommandBusConfig{
			GeneratePublishTopic: commandTopic,
			Marshaler:            cqrs.ProtoMarshaler{},
			Logger:               watermillLogger(),
		})
		if err != nil {
			return err
		}
		sub, err := wamqp.NewSubscriber(replyQueueConfig(url), watermillLogger())
		if err != nil {
			return err
		}
		backend, err := replyBackend(pub, sub)
		if err != nil {
			return err
		}
		return serveOrders(addr, &watermillBridge{bus: bus, backend: backend})
	}()
	fmt.Fprintln(os.Stderr, "bench: watermill bridge:", err)
	os.Exit(1)
}

// startWatermillBridge runs the bridge as a process of its own, as figway
// runs.
func startWatermillBridge(url string) (addr string, pid int, stop func(), err error) {
	addr = freeAddr()
	pid, stop, err = startSelf(watermillEnv, addr+" "+url, addr)
	return addr, pid, stop, err
}

// startWatermillWorkers runs n Watermill routers serving GetOrder with a
// request-reply command handler, until stop.
func startWatermillWorkers(url string, n int) (stop func(), err error) {
	ctx, cancel := context.WithCancel(context.Background())
	var routers []*message.Router
	stop = func() {
		cancel()
		for _, r := range routers {
			r.Close()
		}
	}
	for range n {
		r, err := startWatermillWorker(ctx, url)
		if err != nil {
			stop()
			return nil, err
		}
		routers = append(routers, r)
	}
	return stop, nil
}

func startWatermillWorker(ctx context.Context, url string) (*message.Router, error) {
	log := watermillLogger()
	router, err := message.NewRouter(message.RouterConfig{}, log)
	if err != nil {
		return nil, err
	}
	sub, err := wamqp.NewSubscriber(wamqp.NewDurableQueueConfig(url), log)
	if err != nil {
		return nil, err
	}
	pub, err := wamqp.NewPublisher(replyQueueConfig(url), log)
	if err != nil {
		return nil, err
	}
	backend, err := replyBackend(pub, sub)
	if err != nil {
		return nil, err
	}
	proc, err := cqrs.NewCommandProcessorWithConfig(router, cqrs.CommandProcessorConfig{
		GenerateSubscribeTopic: func(p cqrs.CommandProcessorGenerateSubscribeTopicParams) (string, error) {
			return watermillCommands + p.CommandName, nil
		},
		SubscriberConstructor: func(cqrs.CommandProcessorSubscriberConstructorParams) (message.Subscriber, error) {
			return sub, nil
		},
		Marshaler: cqrs.ProtoMarshaler{},
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	err = proc.AddHandlers(requestreply.NewCommandHandlerWithResult("get-order", backend,
		func(_ context.Context, req *ordersv1.GetOrderRequest) (*ordersv1.Order, error) {
			return &ordersv1.Order{OrderId: req.GetOrderId()}, nil
		}))
	if err != nil {
		return nil, err
	}
	go router.Run(ctx)
	select {
	case <-router.Running():
		return router, nil
	case <-time.After(20 * time.Second):
		router.Close()
		return nil, fmt.Errorf("watermill router not running after 20s")
	}
}
