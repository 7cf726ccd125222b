package main

import (
	"fmt"
	"time"

	"github.com/lora-dev/lora/pkg/backend/vulkan"
	"github.com/lora-dev/lora/pkg/model"
)

func main() {
	be, err := vulkan.New(vulkan.Options{Index: vulkan.AutoDevice})
	if err != nil {
		panic(err)
	}
	m, err := model.Load("/work/shared/data/models/stories260K.gguf", be, model.LoadOptions{})
	if err != nil {
		panic(err)
	}
	a, err := m.NewActivations(4, 128, false)
	if err != nil {
		panic(err)
	}
	ids := make([]int32, 512)
	for i := range ids {
		ids[i] = int32(i % 500)
	}
	be.Write(a.IDs, ids)
	p, err := be.Record(func() error { return m.Forward(a, nil) })
	if err != nil {
		panic(err)
	}
	p.Run()
	be.Sync()
	be.Profile(true)
	t0 := time.Now()
	for range 3 {
		p.Run()
		be.Sync()
	}
	fmt.Println("per forward", time.Since(t0)/3)
	var tot float64
	for _, k := range be.Profile(true) {
		tot += k.Seconds
		fmt.Printf("%-20s %5d %8.3f ms\n", k.Name, k.Calls, k.Seconds*1e3/3)
	}
	fmt.Println("total kernel ms", tot*1e3/3)
}
