package teams

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func packagedManifest(t *testing.T, p Package) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		if f.Name != "manifest.json" {
			continue
		}
		rc, _ := f.Open()
		raw, _ := io.ReadAll(rc)
		rc.Close()
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("manifest.json: %v", err)
		}
		return m
	}
	t.Fatal("no manifest.json")
	return nil
}

const testAppID = "11111111-2222-3333-4444-555555555555"

// The default privacy and terms links name files of this repository, and
// those files exist.
func TestPackageLinksPointAtFilesThatExist(t *testing.T) {
	dev := packagedManifest(t, Package{AppID: testAppID})["developer"].(map[string]any)
	const repo = "https://github.com/approvebot/approvebot/blob/main/"
	for key, want := range map[string]string{"privacyUrl": DefaultPrivacyURL, "termsOfUseUrl": DefaultTermsURL, "websiteUrl": ""} {
		got, _ := dev[key].(string)
		if want != "" && got != want {
			t.Errorf("developer.%s = %q, want %q", key, got, want)
		}
		if key == "websiteUrl" {
			continue
		}
		file, ok := strings.CutPrefix(got, repo)
		if !ok {
			t.Fatalf("developer.%s %q is not a file of the repository", key, got)
		}
		fi, err := os.Stat(filepath.Join("..", "..", filepath.FromSlash(file)))
		if err != nil || fi.Size() < 200 {
			t.Errorf("developer.%s names %s: %v", key, file, err)
		}
	}
	if _, err := os.Stat(filepath.Join("..", "..", "LICENSE")); err != nil {
		t.Errorf("LICENSE: %v", err)
	}
}

func TestPackageTakesOtherLinks(t *testing.T) {
	p := Package{AppID: testAppID, PrivacyURL: `https://intranet.example.com/privacy?a="b"&c=d`, TermsURL: "https://intranet.example.com/terms"}
	dev := packagedManifest(t, p)["developer"].(map[string]any)
	if dev["privacyUrl"] != p.PrivacyURL || dev["termsOfUseUrl"] != p.TermsURL {
		t.Fatalf("developer: %v", dev)
	}
	for _, bad := range []Package{
		{AppID: testAppID, PrivacyURL: "http://intranet.example.com/privacy"},
		{AppID: testAppID, TermsURL: "intranet/terms"},
		{AppID: testAppID, TermsURL: "https://" + strings.Repeat("a", 2048)},
	} {
		err := bad.Write(io.Discard)
		if err == nil || !strings.Contains(err.Error(), "is not an https URL") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}
