package tools

import (
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/gowebpki/jcs"
	_ "github.com/infracloudio/msbotbuilder-go/core"
	_ "github.com/infracloudio/msbotbuilder-go/schema"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/slack-go/slack"
	_ "go.etcd.io/bbolt"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/oauth2/clientcredentials"
)
