package config

import "github.com/figway/figway/config/yamlfile"

// validateResilience checks the breaker and retry settings that involve
// more than one key, as written: it runs before defaults, so that each
// problem is reported once, where it was written.
func validateResilience(c *Config, p *yamlfile.Problems, broken map[string]bool) {
	dflt := c.Defaults.Breaker.FailureRatio
	checkWindow(&c.Defaults.Breaker, 0, yamlfile.Field("defaults", "breaker"), p)
	for i := range c.Routes {
		r, path := &c.Routes[i], yamlfile.Index("routes", i)
		if broken[path] {
			continue
		}
		checkWindow(&r.Breaker, dflt, yamlfile.Field(path, "breaker"), p)
		if r.Retry == "" || p.Reported[yamlfile.Field(path, "retry")] {
			continue
		}
		switch {
		case r.To == TargetLegacy:
			p.Once(yamlfile.Field(path, "retry"), "only for broker routes: a legacy route is not published")
		case r.Pattern == PatternEvent:
			p.Once(yamlfile.Field(path, "retry"), "only for rpc routes: an event whose confirm was lost is published again anyway, with the same id")
		}
	}
}
