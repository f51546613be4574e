package extproc

import (
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// metadataFields are the members of the processor's dynamic-metadata namespace, as
// name/value pairs in name order; empty values are left out.
type metadataFields [5][2]string

// Field numbers of the messages setMetadata writes (envoy/service/ext_proc/v3
// ProcessingResponse and google/protobuf/struct.proto).
const (
	processingResponseDynamicMetadata protowire.Number = 8 // ProcessingResponse.dynamic_metadata: Struct
	structFields                      protowire.Number = 1 // Struct.fields: map<string, Value>
	mapEntryKey                       protowire.Number = 1
	mapEntryValue                     protowire.Number = 2
	valueStringValue                  protowire.Number = 3 // Value.string_value
	valueStructValue                  protowire.Number = 5 // Value.struct_value
)

// setMetadata attaches {MetadataNamespace: fields} to resp as its dynamic_metadata.
//
// It writes the field's wire form into resp's unknown fields instead of building a
// *structpb.Struct: two nested maps of Values cost about 30 allocations and a
// reflective map walk to marshal — 8 µs per reply, measured, about a tenth of the
// gateway's CPU for a transparent call, which carries it twice. The bytes are those
// deterministic proto.Marshal writes for the same Struct (map entries in key order;
// TestSetMetadataWireForm compares them and decodes them back), so Envoy, or any reader
// that decodes the reply, sees an ordinary dynamic_metadata. resp must not also set
// DynamicMetadata.
func setMetadata(resp *extprocv3.ProcessingResponse, fields metadataFields) {
	var inner []byte // the namespace's Struct: one map entry per non-empty field
	for _, kv := range fields {
		if kv[1] != "" {
			inner = appendStructEntry(inner, kv[0], valueStringValue, kv[1])
		}
	}
	outer := appendStructEntry(nil, MetadataNamespace, valueStructValue, string(inner))
	b := protowire.AppendTag(resp.ProtoReflect().GetUnknown(), processingResponseDynamicMetadata, protowire.BytesType)
	b = protowire.AppendBytes(b, outer)
	resp.ProtoReflect().SetUnknown(b)
}

// appendStructEntry appends one Struct.fields map entry {key: Value{kind: v}} to b,
// where kind is Value.string_value (v a string) or Value.struct_value (v an encoded
// Struct).
func appendStructEntry(b []byte, key string, kind protowire.Number, v string) []byte {
	valueLen := protowire.SizeTag(kind) + protowire.SizeBytes(len(v))
	entryLen := protowire.SizeTag(mapEntryKey) + protowire.SizeBytes(len(key)) +
		protowire.SizeTag(mapEntryValue) + protowire.SizeBytes(valueLen)
	b = protowire.AppendTag(b, structFields, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(entryLen))
	b = protowire.AppendTag(b, mapEntryKey, protowire.BytesType)
	b = protowire.AppendString(b, key)
	b = protowire.AppendTag(b, mapEntryValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(valueLen))
	b = protowire.AppendTag(b, kind, protowire.BytesType)
	return protowire.AppendString(b, v)
}
