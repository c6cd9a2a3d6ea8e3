package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"github.com/meridian-gslb/meridian/api/client"
)

// Shift traffic after a dry run: the dry run says what the shares would
// be; a write that would leave the service without an answer is refused
// with the services it would affect.
func ExampleClient_SetWeights() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:8053", client.WithToken("TOKEN"))
	if err != nil {
		log.Fatal(err)
	}
	w := map[string]uint32{"eu-west": 70, "us-east": 30}
	plan, err := c.SetWeights(ctx, "api.gslb.example", w, client.DryRun())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("eu-west would get", plan.ExpectedShare["ipv4"].Regions["eu-west"])
	_, err = c.SetWeights(ctx, "api.gslb.example", w, client.IfRevision(plan.Revision))
	switch p := client.ProblemOf(err); {
	case err == nil:
	case client.StatusCode(err) == http.StatusPreconditionFailed:
		log.Fatal("someone else changed the service meanwhile")
	case len(p.NoData) > 0:
		log.Fatalf("refused: %s would answer NODATA", p.NoData[0].Service)
	default:
		log.Fatal(err)
	}
}
