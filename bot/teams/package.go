package teams

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/approvebot/approvebot/manifests"
)

const appIDPlaceholder = "{{APP_ID}}"

// WritePackage writes the Teams app package (a zip of manifest.json with
// appID filled in, color.png and outline.png) for upload to Teams. appID is
// the Azure Bot's Microsoft App ID; it also serves as the Teams app id.
func WritePackage(w io.Writer, appID string) error {
	if !guidPattern.MatchString(appID) {
		return fmt.Errorf("teams package: app id %q is not a GUID like 00000000-0000-0000-0000-000000000000", appID)
	}
	manifest, err := fs.ReadFile(manifests.Teams, "teams/manifest.json")
	if err != nil {
		return fmt.Errorf("teams package: %w", err)
	}
	if bytes.Count(manifest, []byte(appIDPlaceholder)) != 2 {
		return fmt.Errorf("teams package: manifest.json must hold %s in id and bots[0].botId", appIDPlaceholder)
	}
	manifest = bytes.ReplaceAll(manifest, []byte(appIDPlaceholder), []byte(appID))
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
