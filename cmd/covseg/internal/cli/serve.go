package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/covseg/covseg/engine/ort"
	"github.com/covseg/covseg/infer"
	"github.com/covseg/covseg/serve"
)

// serveFlags are the options of "covseg serve".
type serveFlags struct {
	modelPath, engine, data, addr, tokenFile, modelName string
	workers, queue, threads                             int
	maxUploadMiB                                        int64
	inferTimeout, requestTimeout                        time.Duration
}

// serveTokenEnv names the environment variable that may hold the token.
const serveTokenEnv = "COVSEG_SERVE_TOKEN"

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve --model MODEL [--data DIR] [--addr 127.0.0.1:8000]",
		Short: "Serve the model over HTTP: a viewer of cases and MONAI Label's API for 3D Slicer",
		Long: `Run the model behind an HTTP server, loaded once, with a bounded job queue.

  /                 the cases with their report figures; /case/ID shows the CT
                    with the infiltrate and lung masks (NiiVue, when the binary
                    was built after scripts/setup installed it)
  /info/, /infer/NAME?image=ID, /datastore/ ...
                    MONAI Label's REST API: 3D Slicer's MONAI Label extension
                    connects to http://HOST:PORT with no plug-in
  /api/cases/ID[/FILE]
                    a case's record and files (image, mask, lungs, report,
                    montage)

DIR (--data) is the datastore: every case lives in DIR/cases/ID, written
atomically, and a restart serves the finished cases and queues again the
unfinished ones. CTs placed directly in DIR (ID.nii.gz, ID.nii, or a DICOM
folder ID) can be segmented by ID without an upload.

It listens on 127.0.0.1 unless --addr says otherwise, and then only with a
token (--token-file, or ` + serveTokenEnv + `): clients send
"Authorization: Bearer TOKEN"; a browser opens /?token=TOKEN once. Without
--model the server shows cases and takes saved labels but does not segment.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.modelPath, "model", "", "model: ONNX file (covseg model export) or model file (.ckpt)")
	fl.StringVar(&f.engine, "engine", infer.EngineORT, "inference engine: ort (ONNX Runtime) or gomlx (pure Go, slow)")
	fl.IntVar(&f.threads, "threads", 0, "ONNX Runtime threads (default: one per core)")
	fl.StringVar(&f.modelName, "model-name", serve.DefaultModelName, "the model's name in MONAI Label's API (/infer/NAME)")
	fl.StringVar(&f.data, "data", "covseg-serve-data", "datastore folder (created if needed); CTs placed in it can be segmented by name")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8000", "address to listen on; other than loopback only with a token")
	fl.StringVar(&f.tokenFile, "token-file", "", "file whose first line is the bearer token (or set "+serveTokenEnv+")")
	fl.IntVar(&f.workers, "workers", 1, "jobs processed at once (the model itself runs one volume at a time)")
	fl.IntVar(&f.queue, "queue", serve.DefaultQueueSize, "jobs that may wait; beyond that requests get 503 with Retry-After")
	fl.Int64Var(&f.maxUploadMiB, "max-upload", serve.DefaultMaxUpload>>20, "largest request body in MiB, enforced while reading")
	fl.DurationVar(&f.inferTimeout, "infer-timeout", serve.DefaultInferTimeout, "how long /infer waits for its job before answering 504 (the job goes on)")
	fl.DurationVar(&f.requestTimeout, "request-timeout", serve.DefaultRequestTimeout, "longest time to read a request or write an answer")
	return cmd
}

func runServe(ctx context.Context, stderr io.Writer, f serveFlags) error {
	token, err := serveToken(f.tokenFile)
	if err != nil {
		return err
	}
	if err := serve.CheckAddr(f.addr, token); err != nil {
		return err
	}
	cfg := serve.Config{
		Dir: f.data, DataDir: f.data, ModelName: f.modelName, Workers: f.workers, QueueSize: f.queue,
		MaxUpload: f.maxUploadMiB << 20, InferTimeout: f.inferTimeout, Token: token, Version: Version, Log: stderr,
	}
	if f.modelPath != "" {
		eng, err := infer.OpenEngine(f.modelPath, infer.EngineOptions{Kind: f.engine, Threads: f.threads, Version: Version})
		if errors.Is(err, ort.ErrNoLibrary) {
			return fmt.Errorf("serve: %w\n(or run with --engine gomlx and a model file .ckpt: pure Go, no library, but many times slower)", err)
		}
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer eng.Close()
		seg, err := infer.New(eng, infer.DefaultOptions())
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		cfg.Segmenter = seg
		fmt.Fprintf(stderr, "model %s: %s; %s mode; engine %s\n", f.modelPath, seg.Config(), seg.Mode(), eng.Name())
	} else {
		fmt.Fprintln(stderr, "no --model: serving cases and saved labels only")
	}
	if !serve.HasViewer() {
		fmt.Fprintln(stderr, "this binary has no 3D viewer: run scripts/setup (installs NiiVue with npm) and build covseg again")
	}
	srv, err := serve.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	// An /infer answer may come only after --infer-timeout.
	rt := max(f.requestTimeout, f.inferTimeout+time.Minute)
	return serve.ListenAndServe(ctx, f.addr, srv.Handler(), rt, func(a net.Addr) {
		fmt.Fprintf(stderr, "covseg serve: datastore %s; listening on http://%s/\n", f.data, a)
	})
}

// serveToken reads the token from --token-file, else from the environment.
func serveToken(file string) (string, error) {
	if file != "" {
		return serve.ReadToken(file)
	}
	t := os.Getenv(serveTokenEnv)
	if t != "" && len(t) < 16 {
		return "", fmt.Errorf("serve: %s is shorter than 16 characters", serveTokenEnv)
	}
	return t, nil
}
