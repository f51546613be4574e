package extproc

import (
	"bytes"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/google/go-cmp/cmp"
)

// metadataStruct is what setMetadata encodes, built the ordinary way.
func metadataStruct(fields metadataFields) *structpb.Struct {
	inner := map[string]*structpb.Value{}
	for _, kv := range fields {
		if kv[1] != "" {
			inner[kv[0]] = structpb.NewStringValue(kv[1])
		}
	}
	return &structpb.Struct{Fields: map[string]*structpb.Value{MetadataNamespace: structpb.NewStructValue(&structpb.Struct{Fields: inner})}}
}

func TestSetMetadataWireForm(t *testing.T) {
	c := &call{}
	c.op.Name, c.integ.ID = "list_users", "int_01M8JV3XGERW3C2M3B10C1H60K"
	for _, fields := range []metadataFields{
		c.metadata(decisionAllow, "", "aud_01M8JV3XGERW3C2M3B10C1H60K"),
		c.metadata(decisionDeny, CodeOperationNotAllowed, ""),
		(&call{}).metadata(decisionDeny, CodeInvalidAPIKey, ""), // no operation, no integration
		{{"k", string(bytes.Repeat([]byte("é"), 200))}},         // multi-byte lengths
	} {
		// The field alone: the same bytes as deterministic marshalling of the Struct.
		alone := &extprocv3.ProcessingResponse{}
		setMetadata(alone, fields)
		gotBytes, err := proto.Marshal(alone)
		if err != nil {
			t.Fatal(err)
		}
		wantBytes, err := proto.MarshalOptions{Deterministic: true}.Marshal(&extprocv3.ProcessingResponse{DynamicMetadata: metadataStruct(fields)})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gotBytes, wantBytes) {
			t.Errorf("%v: wire form differs from deterministic proto.Marshal:\n got %x\nwant %x", fields, gotBytes, wantBytes)
		}
		// In a real reply (unknown fields go after the known ones, which the wire
		// format allows): decodes to the reply with that Struct.
		got := requestHeadersReply(&extprocv3.CommonResponse{}, bodyModes(0))
		setMetadata(got, fields)
		want := requestHeadersReply(&extprocv3.CommonResponse{}, bodyModes(0))
		want.DynamicMetadata = metadataStruct(fields)
		if gotBytes, err = proto.Marshal(got); err != nil {
			t.Fatal(err)
		}
		var decoded extprocv3.ProcessingResponse
		if err := proto.Unmarshal(gotBytes, &decoded); err != nil {
			t.Fatalf("%v: %v", fields, err)
		}
		if diff := cmp.Diff(want, &decoded, protocmp.Transform()); diff != "" {
			t.Errorf("%v: decoded reply (-want +got):\n%s", fields, diff)
		}
	}
}

// The metadata of a reply is one dynamic_metadata field, not appended twice.
func TestSetMetadataOnce(t *testing.T) {
	resp := responseHeadersReply(&extprocv3.CommonResponse{})
	setMetadata(resp, (&call{}).metadata(decisionAllow, ReasonOK, "aud_1"))
	b, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	var decoded extprocv3.ProcessingResponse
	if err := proto.Unmarshal(b, &decoded); err != nil {
		t.Fatal(err)
	}
	if n := len(decoded.GetDynamicMetadata().GetFields()[MetadataNamespace].GetStructValue().GetFields()); n != 3 {
		t.Errorf("%d members, want 3 (decision, code, audit_event_id): %v", n, decoded.GetDynamicMetadata())
	}
}
