package main

import (
	"fmt"
	"os"
	"strings"
)

var version = "dev"

func main() {
	fmt.Printf("server %s args=%s\n", version, strings.Join(os.Args[1:], ","))
}
