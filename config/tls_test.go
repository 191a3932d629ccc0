package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/figway/figway/internal/testing/certs"
)

func TestParseTLS(t *testing.T) {
	dir := apiDir(t)
	tc := certs.Make(t)
	// Relative paths are relative to the routes file: copy two files next
	// to it.
	for _, f := range []string{tc.ServerCert, tc.ServerKey} {
		b, _ := os.ReadFile(f)
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600)
	}
	junk := writeFile(t, dir, "junk.pem", "not a certificate\n")
	amqps := "descriptors: [api.binpb]\nbroker: {url: \"amqps://guest:s3cret@localhost:5671/\", tls: {ca: " + tc.CA +
		", cert: " + tc.ClientCert + ", key: " + tc.ClientKey + ", server_name: rabbit.internal}}\n"
	tests := []struct {
		name string
		file string
		want []string
	}{
		{"server tls relative", base + "server: {tls: {cert: server.pem, key: server-key.pem, client_ca: " + tc.CA + "}}\n", nil},
		{"broker tls", amqps, nil},
		{"broker tls, ca only", "descriptors: [api.binpb]\nbroker: {urls: [\"amqps://h1/\", \"amqps://h2/\"], tls: {ca: " + tc.CA + "}}\n", nil},
		{"server tls without key", base + "server: {tls: {cert: server.pem}}\n", []string{
			"server.tls.key (line 3): required"}},
		{"server tls wrong key", base + "server: {tls: {cert: server.pem, key: " + tc.ClientKey + "}}\n", []string{
			"server.tls.cert (line 3): cannot load the certificate and key"}},
		{"server tls missing file", base + "server: {tls: {cert: nope.pem, key: server-key.pem}}\n", []string{
			"server.tls.cert (line 3): cannot load the certificate and key: open "}},
		{"client ca junk", base + "server: {tls: {cert: server.pem, key: server-key.pem, client_ca: junk.pem}}\n", []string{
			"server.tls.client_ca (line 3): " + junk + " holds no PEM certificate"}},
		{"unknown tls key", base + "server: {tls: {cert: server.pem, key: server-key.pem, ca: x}}\n", []string{
			`server.tls.ca (line 3): unknown field`}},
		{"broker tls over amqp", base[:len(base)-2] + ", tls: {ca: " + tc.CA + "}}\n", []string{
			"broker.url (line 2): broker.tls is set: want an amqps:// URL (figway does not fall back to plaintext)"}},
		{"broker tls over amqp in a list", "descriptors: [api.binpb]\nbroker: {urls: [\"amqps://h1/\", \"amqp://h2/\"], tls: {}}\n", []string{
			"broker.urls[1] (line 2): broker.tls is set: want an amqps:// URL"}},
		{"broker cert without key", "descriptors: [api.binpb]\nbroker: {url: \"amqps://h/\", tls: {cert: " + tc.ClientCert + "}}\n", []string{
			"broker.tls.key (line 2): required with cert"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.file), dir)
			checkProblems(t, "Parse("+quote(tt.file)+")", err, tt.want)
		})
	}

	c, err := Parse([]byte(base+"server: {tls: {cert: server.pem, key: server-key.pem, client_ca: "+tc.CA+"}}\n"), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Server.TLS.Cert, "/") {
		t.Errorf("Server.TLS.Cert = %q; want an absolute path", c.Server.TLS.Cert)
	}
}
