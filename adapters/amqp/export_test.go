package amqp

import amqp "github.com/rabbitmq/amqp091-go"

// SetAfterPublish makes f run on the lane's goroutine right after each
// publish is written. Call it before Run.
func SetAfterPublish(c *Client, f func(ch *amqp.Channel, event bool)) { c.afterPublish = f }
