module kaito.dev/images/copy-weights

go 1.25.0
