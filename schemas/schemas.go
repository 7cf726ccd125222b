// Package schemas embeds lora's JSON Schemas for tools and for lint.
package schemas

import _ "embed"

// Recipe is recipe.schema.json (draft 2020-12), generated from the Go types
// in pkg/recipe by `go test ./pkg/recipe -run TestSchemaFile -update`.
//
//go:embed recipe.schema.json
var Recipe []byte

// RecipeID is the schema's $id.
const RecipeID = "https://lora.dev/schemas/recipe.schema.json"
