// Package api holds Herald's protobuf definitions (herald/v1/herald.proto)
// and, committed beside them, the Go code generated from them: package
// heraldv1 (messages) and heraldv1connect (Connect clients and handlers,
// which speak gRPC, gRPC-Web and Connect). Building needs no generator;
// after editing a .proto, run `go generate ./api` (buf lints and
// generates; CI fails when the committed code is not current).
package api

//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 lint
//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate
