package teams

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"time"

	"github.com/approvebot/approvebot/manifests"
)

const (
	appIDPlaceholder   = "{{APP_ID}}"
	privacyPlaceholder = "{{PRIVACY_URL}}"
	termsPlaceholder   = "{{TERMS_URL}}"
)

// The privacy statement and terms of use the package links to unless told
// otherwise: PRIVACY.md and TERMS.md at the root of the source repository.
const (
	DefaultPrivacyURL = "https://github.com/approvebot/approvebot/blob/main/PRIVACY.md"
	DefaultTermsURL   = "https://github.com/approvebot/approvebot/blob/main/TERMS.md"
)

// Package is what goes into the Teams app package besides the files in
// manifests/teams.
type Package struct {
	AppID      string // the Azure Bot's Microsoft App ID; also the Teams app id
	PrivacyURL string // developer.privacyUrl; DefaultPrivacyURL when empty
	TermsURL   string // developer.termsOfUseUrl; DefaultTermsURL when empty
}

// Check says what is wrong with p, naming the flag-like field.
func (p Package) Check() error {
	if !guidPattern.MatchString(p.AppID) {
		return fmt.Errorf("teams package: app id %q is not a GUID like 00000000-0000-0000-0000-000000000000", p.AppID)
	}
	for _, f := range []struct{ name, val string }{{"privacy-url", p.PrivacyURL}, {"terms-url", p.TermsURL}} {
		if f.val == "" {
			continue
		}
		u, err := url.Parse(f.val)
		if err != nil || u.Scheme != "https" || u.Host == "" || len(f.val) > 2048 {
			return fmt.Errorf("teams package: %s %q is not an https URL (Teams requires https links of at most 2048 characters)", f.name, f.val)
		}
	}
	return nil
}

// Write writes the Teams app package (a zip of manifest.json with the app id
// and links filled in, color.png and outline.png) for upload to Teams.
func (p Package) Write(w io.Writer) error {
	if err := p.Check(); err != nil {
		return err
	}
	if p.PrivacyURL == "" {
		p.PrivacyURL = DefaultPrivacyURL
	}
	if p.TermsURL == "" {
		p.TermsURL = DefaultTermsURL
	}
	manifest, err := fs.ReadFile(manifests.Teams, "teams/manifest.json")
	if err != nil {
		return fmt.Errorf("teams package: %w", err)
	}
	if bytes.Count(manifest, []byte(appIDPlaceholder)) != 2 {
		return fmt.Errorf("teams package: manifest.json must hold %s in id and bots[0].botId", appIDPlaceholder)
	}
	manifest = bytes.ReplaceAll(manifest, []byte(appIDPlaceholder), []byte(p.AppID))
	for _, r := range []struct{ placeholder, val string }{{privacyPlaceholder, p.PrivacyURL}, {termsPlaceholder, p.TermsURL}} {
		if bytes.Count(manifest, []byte(r.placeholder)) != 1 {
			return fmt.Errorf("teams package: manifest.json must hold %s once", r.placeholder)
		}
		quoted, _ := json.Marshal(r.val)
		manifest = bytes.ReplaceAll(manifest, []byte(`"`+r.placeholder+`"`), quoted)
	}
	if !json.Valid(manifest) {
		return fmt.Errorf("teams package: manifest.json is not valid JSON")
	}
	zw := zip.NewWriter(w)
	// A fixed time keeps the package byte-for-byte reproducible.
	modified := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	files := []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}}
	for _, icon := range []string{"color.png", "outline.png"} {
		data, err := fs.ReadFile(manifests.Teams, "teams/"+icon)
		if err != nil {
			return fmt.Errorf("teams package: %w", err)
		}
		files = append(files, struct {
			name string
			data []byte
		}{icon, data})
	}
	for _, f := range files {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: modified})
		if err != nil {
			return fmt.Errorf("teams package: %w", err)
		}
		if _, err := fw.Write(f.data); err != nil {
			return fmt.Errorf("teams package: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("teams package: %w", err)
	}
	return nil
}
