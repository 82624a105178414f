// Package serve runs covseg behind an HTTP server: a datastore folder of
// cases (CT, mask, lung mask, severity report, montage), a bounded job queue
// that runs the model loaded once, a viewer page (NiiVue) and enough of MONAI
// Label's REST API that 3D Slicer's MONAI Label extension can upload a CT and
// get its mask back.
//
// # Datastore
//
// Every case lives in DIR/cases/ID/: image.nii.gz (the CT as uploaded or
// converted from DICOM, on its own grid), mask.nii.gz (the model's mask, or
// a label a client saved), lungs.nii.gz, report.json, montage.png and
// case.json (its state); a CT uploaded as a zip of a DICOM series also keeps
// the series (dicom/, under fixed names) and gets seg.dcm, a DICOM
// Segmentation on the series' frames, and sc.dcm, the report as a
// Secondary Capture, both in the source's study. Every file is written to a temporary file and renamed
// into place, so a reader or a restarted server never sees half a file; New
// removes leftover temporary files and queues again the cases that were
// waiting or running when the server stopped. Case IDs come from clients and
// are reduced to letters, digits, '.', '_' and '-' (see SafeID) before they
// name anything on disk.
//
// # MONAI Label
//
// The endpoints follow MONAI Label's (monailabel/endpoints: info, auth, train,
// datastore, infer) with the field names and content types that Slicer's
// MONAILabelClient reads: GET /info/ (no top-level "config": Slicer would ask
// for a server upgrade), GET /auth/, POST /auth/token, GET
// /train/?check_if_running=true (404: nothing is training), PUT /datastore/
// (multipart "file"; the name may be a client-side path: only a safe base
// name is kept), PUT /datastore/label, GET /datastore/, GET
// /datastore/image, GET /datastore/label, and POST /infer/MODEL?image=ID,
// which answers multipart/form-data with a "params" JSON part (label_names)
// and an "image" file part ID_seg.nii.gz: the mask on the CT's own grid.
//
// # Limits
//
// Uploads are capped while they are read (Config.MaxUpload), jobs wait in a
// queue of Config.QueueSize and a full queue answers 503 with Retry-After,
// so load never turns into an out-of-memory death. With Config.Token set every
// request but GET /auth/ needs "Authorization: Bearer TOKEN" (or the cookie
// that GET /?token=TOKEN sets for browsers); CheckAddr refuses a non-loopback
// address without a token.
package serve
