package app_test

import (
	"testing"

	"github.com/figway/figway/internal/rabbitmqtest"
)

func TestMain(m *testing.M) { rabbitmqtest.Main(m) }
