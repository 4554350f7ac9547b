module kaito.dev/realnode/pause

go 1.25.0
