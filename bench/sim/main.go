package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	seed := flag.Uint64("seed", 1, "seed of the simulated clients, rates and noise")
	only := flag.String("run", "", "run only the scenario of this name")
	flag.Parse()
	found := false
	for _, sc := range scenarios {
		if *only != "" && sc.name != *only {
			continue
		}
		found = true
		fmt.Println(sc.run(*seed))
	}
	if !found {
		fmt.Fprintf(os.Stderr, "sim: no scenario %q\n", *only)
		os.Exit(2)
	}
}
