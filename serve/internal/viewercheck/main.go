// Command viewercheck checks covseg serve's viewer in a real browser: it
// starts `covseg serve` on a CT, saves a mask for it through MONAI Label's
// PUT /datastore/label, waits for the report, opens the case page in
// headless Chromium (software WebGL) and checks from the screenshot's pixels
// that the infiltrate's colour is where the mask is and nowhere else, and
// from the page's DOM that it shows the report's numbers.
//
// The mask is made here: a ball of 20 mm radius around the centre of the
// right lung (package lungs), within that lung. The page's check mode
// (/case/ID?check=1) shows the axial slice through the mask's focus on an
// 800×800 canvas at the top left, crosshair hidden, lungs transparent,
// infiltrate opaque, on a purple background, in the radiological convention.
//
// Usage: viewercheck -covseg BIN -ct CT.nii.gz -out DIR [-chromium PATH]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/covseg/covseg/eval/lungs"
	"github.com/covseg/covseg/volume"
	"github.com/covseg/covseg/volume/nifti"
	"github.com/covseg/covseg/volume/volio"
)

const (
	canvas  = 800 // the check page's canvas, square, at (0, 0)
	caseID  = "viewercheck"
	radius  = 20.0 // mm
	timeout = 3 * time.Minute
)

func main() {
	bin := flag.String("covseg", "", "covseg binary (built after scripts/setup, so that it embeds NiiVue)")
	ctPath := flag.String("ct", "", "CT to show (NIfTI)")
	out := flag.String("out", "", "folder for the mask, the screenshot, the DOM and the server's log")
	chromium := flag.String("chromium", "", "Chromium binary (default: chromium, chromium-headless-shell or chrome on PATH)")
	flag.Parse()
	if *bin == "" || *ctPath == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*bin, *ctPath, *out, *chromium); err != nil {
		fmt.Fprintln(os.Stderr, "viewercheck: FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("viewercheck: PASS")
}

func run(bin, ctPath, out, chromium string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	ct, _, err := volio.Read(ctPath, volio.Options{})
	if err != nil {
		return err
	}
	mask, err := makeMask(ct)
	if err != nil {
		return err
	}
	maskPath := filepath.Join(out, "mask.nii.gz")
	if err := nifti.WriteLabel(maskPath, mask); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	base, stop, err := startServer(ctx, bin, out)
	if err != nil {
		return err
	}
	defer stop()
	if err := put(base+"/datastore/?image="+caseID, "file", ctPath); err != nil {
		return err
	}
	if err := put(base+"/datastore/label?image="+caseID+"&tag=final", "label", maskPath); err != nil {
		return err
	}
	c, err := waitDone(ctx, base)
	if err != nil {
		return err
	}
	if c.Focus == nil {
		return errors.New("the case has no focus: the mask is empty?")
	}
	browser, err := findChromium(chromium)
	if err != nil {
		return err
	}
	page := base + "/case/" + caseID + "?check=1"
	shot := filepath.Join(out, "viewer.png")
	if err := chrome(ctx, browser, out, "--screenshot="+shot, page); err != nil {
		return err
	}
	fmt.Println("viewercheck: screenshot", shot)
	dom, err := chromeOutput(ctx, browser, out, "--dump-dom", page)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "viewer.html"), dom, 0o644); err != nil {
		return err
	}
	if err := checkDOM(string(dom), c.Report); err != nil {
		return err
	}
	return checkPixels(shot, mask, *c.Focus)
}

// makeMask is a ball around the right lung's centre, within the lung.
func makeMask(ct *volume.Volume) (*volume.Label, error) {
	res, err := lungs.Segment(ct, lungs.DefaultOptions())
	if err != nil {
		return nil, err
	}
	var sum [3]float64
	n := 0
	d := ct.Dims
	forEach(d, func(i, j, k, at int) {
		if res.Mask.Data[at] == lungs.Right {
			p := ct.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
			for a := range 3 {
				sum[a] += p[a]
			}
			n++
		}
	})
	if n == 0 {
		return nil, errors.New("no right lung found in the CT")
	}
	c := [3]float64{sum[0] / float64(n), sum[1] / float64(n), sum[2] / float64(n)}
	m, err := volume.NewLabel(d, ct.Affine)
	if err != nil {
		return nil, err
	}
	inside := 0
	forEach(d, func(i, j, k, at int) {
		p := ct.Affine.Apply([3]float64{float64(i), float64(j), float64(k)})
		if res.Mask.Data[at] == lungs.Right && math.Hypot(math.Hypot(p[0]-c[0], p[1]-c[1]), p[2]-c[2]) <= radius {
			m.Data[at] = 1
			inside++
		}
	})
	if inside == 0 {
		return nil, errors.New("the ball around the right lung's centre holds no lung")
	}
	return m, nil
}

func forEach(d volume.Dims, f func(i, j, k, at int)) {
	at := 0
	for k := range d[2] {
		for j := range d[1] {
			for i := range d[0] {
				f(i, j, k, at)
				at++
			}
		}
	}
}

// startServer runs covseg serve on a free loopback port with a datastore in
// out, its log in out/serve.log, and returns its URL.
func startServer(ctx context.Context, bin, out string) (string, func(), error) {
	data := filepath.Join(out, "datastore")
	os.RemoveAll(data)
	log, err := os.Create(filepath.Join(out, "serve.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve", "--data", data, "--addr", "127.0.0.1:0")
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { cmd.Process.Kill(); cmd.Wait(); pw.Close(); log.Close() }
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		re := regexp.MustCompile(`listening on (http://[0-9.:]+)/`)
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return a, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("covseg serve did not start; see serve.log")
	}
}

// put uploads a file as one multipart part, as MONAI Label clients do.
func put(url, part, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	w, _ := mw.CreateFormFile(part, path)
	w.Write(b)
	mw.WriteField("params", "{}")
	mw.Close()
	req, _ := http.NewRequest("PUT", url, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("PUT %s: %d %s", url, resp.StatusCode, msg)
	}
	return nil
}

// report holds the figures of a case's report that the page shows.
type report struct {
	LungRightML       float64  `json:"lung_right_ml"`
	LungLeftML        float64  `json:"lung_left_ml"`
	InfiltrateML      float64  `json:"infiltrate_ml"`
	InfiltrateRightML float64  `json:"infiltrate_right_ml"`
	InvolvementPct    *float64 `json:"involvement_pct"`
	Category          string   `json:"category"`
}

// caseView is what GET /api/cases/ID answers, as far as the check reads it.
type caseView struct {
	State  string
	Error  string
	Focus  *[3]float64
	Report *report
}

func waitDone(ctx context.Context, base string) (*caseView, error) {
	for {
		resp, err := http.Get(base + "/api/cases/" + caseID)
		if err != nil {
			return nil, err
		}
		var c caseView
		err = json.NewDecoder(resp.Body).Decode(&c)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		switch c.State {
		case "done":
			if c.Report == nil {
				return nil, errors.New("done without a report")
			}
			return &c, nil
		case "failed":
			return nil, fmt.Errorf("the case failed: %s", c.Error)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("the case is still %s: %w", c.State, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func findChromium(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	for _, name := range []string{"chromium", "chromium-headless-shell", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium on PATH: apt-get install chromium")
}

// chromeArgs run a fresh headless Chromium with software WebGL, no network
// beyond the page, and time for the page's scripts to load the volumes.
func chromeArgs(out string, extra ...string) []string {
	profile, _ := os.MkdirTemp(out, "profile-")
	return append([]string{
		"--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir=" + profile, "--window-size=1200,800", "--hide-scrollbars",
		"--virtual-time-budget=20000", "--run-all-compositor-stages-before-draw",
	}, extra...)
}

func chrome(ctx context.Context, browser, out string, args ...string) error {
	_, err := chromeOutput(ctx, browser, out, args...)
	return err
}

func chromeOutput(ctx context.Context, browser, out string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, browser, chromeArgs(out, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", browser, err, stderr.String())
	}
	return b, nil
}

// checkDOM looks for the report's figures in the page as the page prints
// them, and for the viewer having loaded.
func checkDOM(dom string, r *report) error {
	if !strings.Contains(dom, `data-ready="1"`) {
		return errors.New("the page's viewer did not finish loading (no data-ready on <body>); see viewer.html")
	}
	want := []string{
		fmt.Sprintf("<td>%.1f</td>", r.LungRightML), fmt.Sprintf("<td>%.1f</td>", r.LungLeftML),
		fmt.Sprintf("<td>%.1f</td>", r.InfiltrateML), fmt.Sprintf("<td>%.1f</td>", r.InfiltrateRightML),
		"<b>" + r.Category + "</b>",
	}
	if r.InvolvementPct != nil {
		want = append(want, strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.1f", *r.InvolvementPct), "0"), ".")+" %")
	}
	for _, w := range want {
		if !strings.Contains(dom, w) {
			return fmt.Errorf("the page does not show %q from the report; see viewer.html", w)
		}
	}
	fmt.Printf("viewercheck: page shows the report: %s\n", strings.Join(want, " "))
	readout := regexp.MustCompile(`id="readout">(-?[0-9]+ HU · lung: (right|left|–) · (infiltrate|none))\s+(-?[0-9]+\.[0-9], -?[0-9]+\.[0-9], -?[0-9]+\.[0-9] mm \(RAS\+\))<`).FindStringSubmatch(dom)
	if readout == nil {
		return errors.New("the page shows no HU, labels and RAS+ position (x, y, z to 0.1 mm) at the crosshair; see viewer.html")
	}
	fmt.Printf("viewercheck: crosshair readout: %s at %s\n", readout[1], readout[4])
	// The view opens at the centre of the mask, a ball inside the right lung.
	if readout[2] != "right" || readout[3] != "infiltrate" {
		return fmt.Errorf("the crosshair at the mask's centre reads %q, want the right lung and infiltrate", readout[1])
	}
	return nil
}

// checkPixels maps the mask's voxels in the axial slice through focus onto
// the screenshot (the image's rectangle is what is not background) and
// checks the infiltrate's red where the mask is, at least 3 voxels inside
// it, and its absence 6 voxels or more away from it.
func checkPixels(shot string, mask *volume.Label, focus [3]float64) error {
	f, err := os.Open(shot)
	if err != nil {
		return err
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		return err
	}
	rect, err := imageRect(img)
	if err != nil {
		return err
	}
	c := mask.Canonical()
	inv, err := c.Affine.Inverse()
	if err != nil {
		return err
	}
	k := int(math.Round(inv.Apply(focus)[2]))
	d := c.Dims
	at := func(i, j int) bool {
		return i >= 0 && j >= 0 && i < d[0] && j < d[1] && c.Data[(k*d[1]+j)*d[0]+i] != 0
	}
	near := func(i, j, r int) (all, any bool) {
		all = true
		for dj := -r; dj <= r; dj++ {
			for di := -r; di <= r; di++ {
				m := at(i+di, j+dj)
				all, any = all && m, any || m
			}
		}
		return all, any
	}
	var in, inRed, outN, outRed int
	for j := range d[1] {
		for i := range d[0] {
			// Radiological: the patient's right (+i) on the left; anterior (+j) up.
			x := rect.Min.X + int((1-(float64(i)+0.5)/float64(d[0]))*float64(rect.Dx()))
			y := rect.Min.Y + int((1-(float64(j)+0.5)/float64(d[1]))*float64(rect.Dy()))
			red := isRed(img, x, y)
			if all, _ := near(i, j, 3); all {
				in++
				if red {
					inRed++
				}
			} else if _, any := near(i, j, 6); !any {
				outN++
				if red {
					outRed++
				}
			}
		}
	}
	fmt.Printf("viewercheck: slice k=%d, image at %v: infiltrate colour at %d of %d voxels inside the mask, %d of %d far outside\n", k, rect, inRed, in, outRed, outN)
	if in < 20 {
		return fmt.Errorf("only %d voxels deep inside the mask in slice %d", in, k)
	}
	if float64(inRed) < 0.9*float64(in) {
		return fmt.Errorf("the infiltrate colour covers %d of %d voxels inside the mask", inRed, in)
	}
	if float64(outRed) > 0.005*float64(outN) {
		return fmt.Errorf("the infiltrate colour shows at %d of %d voxels away from the mask", outRed, outN)
	}
	return nil
}

// isRed is the infiltrate's colour (255, 40, 40), which no grey CT pixel
// and neither lung's colour comes near.
func isRed(img image.Image, x, y int) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	r, g, b = r>>8, g>>8, b>>8
	return r > 180 && g < 110 && b < 110 && r > g+100
}

// imageRect is the bounding box of the canvas pixels that are not the
// check page's purple background (0.2, 0, 0.3).
func imageRect(img image.Image) (image.Rectangle, error) {
	var rect image.Rectangle
	first := true
	for y := 0; y < canvas && y < img.Bounds().Dy(); y++ {
		for x := 0; x < canvas && x < img.Bounds().Dx(); x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			r, g, b = r>>8, g>>8, b>>8
			if absDiff(r, 51) <= 3 && g <= 3 && absDiff(b, 77) <= 3 {
				continue
			}
			p := image.Rect(x, y, x+1, y+1)
			if first {
				rect, first = p, false
			} else {
				rect = rect.Union(p)
			}
		}
	}
	if first || rect.Dx() < 100 || rect.Dy() < 100 {
		return rect, fmt.Errorf("no image drawn on the canvas (found %v); WebGL failed?", rect)
	}
	return rect, nil
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
