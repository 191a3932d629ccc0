package ramp

import (
	"testing"

	"github.com/figway/figway/internal/testing/rabbitmq"
)

func TestMain(m *testing.M) { rabbitmq.Main(m) }
