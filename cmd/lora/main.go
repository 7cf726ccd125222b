// Command lora runs declarative LoRA fine-tuning recipes; see the README.
package main

import (
	"os"

	"github.com/lora-dev/lora/pkg/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
