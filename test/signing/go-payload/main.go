// Command go-payload decodes Notary payloads the way Notation's verifier does, for the
// differential test test/signing/go-payload.spec.ts: notation-go unmarshals the payload of a
// verified envelope with encoding/json into envelope.Payload, whose targetArtifact is an OCI
// image-spec v1 Descriptor. Both types are mirrored here with the standard library only.
//
//	go-payload          stdin: one base64 (standard) payload per line;
//	                    stdout: one JSON answer per line, {"ok":true,"mediaType","digest","size"} or {"ok":false,"error"}
//	go-payload folds    stdout: the non-ASCII runes encoding/json matches to an ASCII letter in a field name
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"unicode/utf8"
)

// Platform mirrors github.com/opencontainers/image-spec/specs-go/v1.Platform.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// Descriptor mirrors github.com/opencontainers/image-spec/specs-go/v1.Descriptor
// (digest.Digest is a string type without its own JSON decoding).
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Data         []byte            `json:"data,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

// Payload mirrors github.com/notaryproject/notation-go/internal/envelope.Payload.
type Payload struct {
	TargetArtifact Descriptor `json:"targetArtifact"`
}

type answer struct {
	OK        bool   `json:"ok"`
	Error     string `json:"error,omitempty"`
	MediaType string `json:"mediaType,omitempty"`
	Digest    string `json:"digest,omitempty"`
	Size      int64  `json:"size"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "folds" {
		folds()
		return
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<22)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var a answer
		raw, err := base64.StdEncoding.DecodeString(in.Text())
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad input line:", err)
			os.Exit(2)
		}
		var p Payload
		if err := json.Unmarshal(raw, &p); err != nil {
			a.Error = err.Error()
		} else {
			a = answer{OK: true, MediaType: p.TargetArtifact.MediaType, Digest: p.TargetArtifact.Digest, Size: p.TargetArtifact.Size}
		}
		if err := enc.Encode(a); err != nil {
			os.Exit(3)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

// folds asks encoding/json itself: a struct with one field per ASCII letter, and for every
// non-ASCII rune a one-member object named by that rune.
func folds() {
	fields := make([]reflect.StructField, 0, 26)
	for c := 'a'; c <= 'z'; c++ {
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("F%c", c-'a'+'A'), Type: reflect.TypeOf(0), Tag: reflect.StructTag(fmt.Sprintf(`json:"%c"`, c))})
	}
	typ := reflect.StructOf(fields)
	found := map[string]string{}
	buf := make([]byte, 0, 16)
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		buf = append(buf[:0], `{"`...)
		buf = utf8.AppendRune(buf, r)
		buf = append(buf, `":1}`...)
		v := reflect.New(typ)
		if err := json.Unmarshal(buf, v.Interface()); err != nil {
			continue
		}
		for i := 0; i < 26; i++ {
			if v.Elem().Field(i).Int() == 1 {
				found[fmt.Sprintf("%04X", r)] = string(rune('A' + i))
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(found); err != nil {
		os.Exit(3)
	}
}
