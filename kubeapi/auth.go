package kubeapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/podrun/podrun/api"
)

// Credentials are the API's TLS material and token, generated once and
// kept 0600 in Dir (the daemon's <root>/kubeapi).
type Credentials struct {
	Dir                   string
	CA                    []byte // PEM
	ServerCert, ServerKey []byte // PEM certificate and key
	ClientCert, ClientKey []byte // PEM certificate and key of the kubeconfig's user
	Token                 string
	caCert                *x509.Certificate
}

// The files of Dir.
const (
	caFile         = "ca.crt"
	caKeyFile      = "ca.key"
	serverFile     = "server.crt"
	serverKeyFile  = "server.key"
	clientFile     = "client.crt"
	clientKeyFile  = "client.key"
	tokenFile      = "token"
	serverAddrFile = "server"
)

// ClientUser is the client certificate's subject: system:masters as
// kubeadm's admin.conf, which is what podrun's one user is.
const ClientUser = "podrun-admin"

// LoadCredentials reads the credentials of dir.
func LoadCredentials(dir string) (*Credentials, error) {
	c := &Credentials{Dir: dir}
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{caFile, &c.CA}, {serverFile, &c.ServerCert}, {serverKeyFile, &c.ServerKey}, {clientFile, &c.ClientCert}, {clientKeyFile, &c.ClientKey}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, err
		}
		*f.dst = b
	}
	tok, err := os.ReadFile(filepath.Join(dir, tokenFile))
	if err != nil {
		return nil, err
	}
	c.Token = strings.TrimSpace(string(tok))
	block, _ := pem.Decode(c.CA)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM certificate", filepath.Join(dir, caFile))
	}
	if c.caCert, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, err
	}
	return c, nil
}

// EnsureCredentials loads dir's credentials, generating them the first
// time: a CA, a serving certificate for loopback (and hosts), a client
// certificate and a random token, each file 0600.
func EnsureCredentials(dir string, hosts ...string) (*Credentials, error) {
	if c, err := LoadCredentials(dir); err == nil {
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the API credentials: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "podrun-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = serial(), now.Add(-time.Hour), now.AddDate(10, 0, 0)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pemOf("CERTIFICATE", der), pemOf("EC PRIVATE KEY", kb), nil
	}
	srv := &x509.Certificate{Subject: pkix.Name{CommonName: "podrun-apiserver"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			srv.IPAddresses = append(srv.IPAddresses, ip)
		} else if h != "" {
			srv.DNSNames = append(srv.DNSNames, h)
		}
	}
	c := &Credentials{Dir: dir, CA: pemOf("CERTIFICATE", caDER), caCert: ca}
	if c.ServerCert, c.ServerKey, err = leaf(srv); err != nil {
		return nil, err
	}
	cli := &x509.Certificate{Subject: pkix.Name{CommonName: ClientUser, Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if c.ClientCert, c.ClientKey, err = leaf(cli); err != nil {
		return nil, err
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	c.Token = hex.EncodeToString(tok)
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	// The CA certificate last: its presence means the set is complete.
	for _, f := range []struct {
		name string
		data []byte
	}{{caKeyFile, pemOf("EC PRIVATE KEY", caKeyDER)}, {serverFile, c.ServerCert}, {serverKeyFile, c.ServerKey},
		{clientFile, c.ClientCert}, {clientKeyFile, c.ClientKey}, {tokenFile, []byte(c.Token + "\n")}, {caFile, c.CA}} {
		if err := writePrivate(filepath.Join(dir, f.name), f.data); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// writePrivate writes a 0600 file atomically.
func writePrivate(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil { // whatever the umask or an old file
		return err
	}
	return os.Rename(tmp, path)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// TLSConfig serves the API with the serving certificate and asks for (and
// verifies) a client certificate signed by the CA.
func (c *Credentials) TLSConfig() (*tls.Config, error) {
	cert, err := tls.X509KeyPair(c.ServerCert, c.ServerKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.caCert)
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven,
		MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, nil
}

// SaveServer records the URL the API is served at, for podrun kubeconfig.
func (c *Credentials) SaveServer(url string) error {
	return writePrivate(filepath.Join(c.Dir, serverAddrFile), []byte(url+"\n"))
}

// Server is the URL SaveServer recorded, "" if none.
func (c *Credentials) Server() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, serverAddrFile))
	return strings.TrimSpace(string(b))
}

// public are the paths the API server lets anyone read
// (system:public-info-viewer).
var public = map[string]bool{"/version": true, "/healthz": true, "/livez": true, "/readyz": true}

// Authenticate lets through requests with a client certificate the TLS
// layer verified against the CA, or the bearer token; anything else is a
// 401 metav1.Status (but the health and version endpoints).
func (c *Credentials) Authenticate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.TLS != nil && len(r.TLS.VerifiedChains) > 0:
			h.ServeHTTP(w, withUser(r, certUser(r.TLS.VerifiedChains[0][0])))
			return
		case c.validToken(r):
			h.ServeHTTP(w, withUser(r, tokenUser()))
			return
		case public[strings.TrimSuffix(r.URL.Path, "/")]:
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="podrun"`)
		api.WriteError(w, apierrors.NewUnauthorized("Unauthorized"))
	})
}

func (c *Credentials) validToken(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && c.Token != "" && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(c.Token)) == 1
}
