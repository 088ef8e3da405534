// Package client is the typed client of podrun's API used by the CLI verbs
// and the integration tests.
package client
