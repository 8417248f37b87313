package registrystub_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	registrystub "github.com/shakedown-dev/shakedown/stub/registry"
	"github.com/shakedown-dev/shakedown/stub/tlsca"
)

// A registry over TLS from the test's CA: an image pushed, pulled by a
// client that trusts the CA, then refused in airgap mode.
func Example() {
	ca, err := tlsca.New(tlsca.Options{})
	if err != nil {
		panic(err)
	}
	s := registrystub.New(registrystub.Config{CA: ca})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	img, _ := random.Image(1024, 1)
	if _, err := s.Push(ctx, "library/app:1.0", img); err != nil { // starts s on loopback
		panic(err)
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = ca.ClientTLSConfig()
	ref, err := name.ParseReference(s.Addr() + "/library/app:1.0")
	if err != nil {
		panic(err)
	}
	_, err = remote.Get(ref, remote.WithContext(ctx), remote.WithTransport(tr))
	fmt.Println("pull:", err)

	s.SetRefusePulls(true)
	_, err = remote.Get(ref, remote.WithContext(ctx), remote.WithTransport(tr))
	fmt.Println("airgap pull failed:", err != nil)
	for _, p := range s.Pulls() {
		fmt.Println(p.Method, p.Kind, p.Repo, p.Reference, p.Status, p.Refused)
	}
	// Output:
	// pull: <nil>
	// airgap pull failed: true
	// GET manifest library/app 1.0 200 false
	// GET manifest library/app 1.0 403 true
}
