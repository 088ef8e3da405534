package kubeapi

import (
	"errors"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ContextName names the kubeconfig's cluster, user and context.
const ContextName = "podrun"

// Kubeconfig is a kubeconfig for server with the client certificate.
func (c *Credentials) Kubeconfig(server string) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	c.addTo(cfg, server)
	return cfg
}

func (c *Credentials) addTo(cfg *clientcmdapi.Config, server string) {
	cluster := clientcmdapi.NewCluster()
	cluster.Server, cluster.CertificateAuthorityData = server, c.CA
	user := clientcmdapi.NewAuthInfo()
	user.ClientCertificateData, user.ClientKeyData = c.ClientCert, c.ClientKey
	ctx := clientcmdapi.NewContext()
	ctx.Cluster, ctx.AuthInfo, ctx.Namespace = ContextName, ContextName, "default"
	cfg.Clusters[ContextName], cfg.AuthInfos[ContextName], cfg.Contexts[ContextName] = cluster, user, ctx
	cfg.CurrentContext = ContextName
}

// WriteKubeconfig writes the kubeconfig to path (0600). With merge, the
// podrun cluster, user and context are added to (or replace those of) the
// kubeconfig already there, which keeps its other entries, and podrun
// becomes its current context.
func (c *Credentials) WriteKubeconfig(path, server string, merge bool) error {
	cfg := clientcmdapi.NewConfig()
	if merge {
		old, err := clientcmd.LoadFromFile(path)
		switch {
		case err == nil:
			cfg = old
		case !errors.Is(err, os.ErrNotExist):
			return err
		}
	}
	c.addTo(cfg, server)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return writePrivate(path, data)
}
