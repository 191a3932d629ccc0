package config

// validateResilience checks the breaker and retry settings that involve
// more than one key, as written: it runs before defaults, so that each
// problem is reported once, where it was written.
func validateResilience(c *Config, p *problems, broken map[string]bool) {
	dflt := c.Defaults.Breaker.FailureRatio
	checkWindow(&c.Defaults.Breaker, 0, field("defaults", "breaker"), p)
	for i := range c.Routes {
		r, path := &c.Routes[i], index("routes", i)
		if broken[path] {
			continue
		}
		checkWindow(&r.Breaker, dflt, field(path, "breaker"), p)
		if r.Retry == "" || p.reported[field(path, "retry")] {
			continue
		}
		switch {
		case r.To == TargetLegacy:
			p.once(field(path, "retry"), "only for broker routes: a legacy route is not published")
		case r.Pattern == PatternEvent:
			p.once(field(path, "retry"), "only for rpc routes: an event whose confirm was lost is published again anyway, with the same id")
		}
	}
}
