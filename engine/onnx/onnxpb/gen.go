// Package onnxpb holds Go types generated from onnx.proto (ONNX 1.12, IR
// version 8), the protobuf schema of ONNX model files.
//
// The generated code is committed so that building covseg never needs protoc.
// To regenerate (protoc 3.21 from Debian's protobuf-compiler, and
// `go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12`, the
// version in go.mod), copy onnx.proto from Debian's python3-onnx
// (/usr/lib/python3/dist-packages/onnx/onnx.proto) here and run go generate.
package onnxpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=github.com/covseg/covseg/onnx/onnxpb onnx.proto
