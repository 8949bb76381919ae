package app

import (
	"fmt"

	"yibao/face"
	"yibao/face/onnx"
	"yibao/faceid"
)

// openFace builds face payment. The bundled embedder needs the ONNX
// Runtime library and the models from npm (third_party/face, or
// face_dir); without them face payment is off with the reason in its
// status and every face call, and the rest of the platform runs as usual.
func (a *App) openFace() {
	var emb face.Embedder
	var off error
	if a.Config.Face == "off" {
		off = fmt.Errorf("switched off in the configuration (face: off)")
	} else if paths, err := face.Locate(a.Config.FaceDir); err != nil {
		off = err
	} else if e, err := onnx.New(paths); err != nil {
		off = err
	} else {
		emb = e
		a.faceEmbedder = e
	}
	a.Face = faceid.New(a.DB, a.Registry, a.keys, a.master, emb, off, a.Ecert, faceid.DefaultConfig(), a.Log)
	a.Face.Audit = a.Audit
	if on, msg := a.Face.Status(); !on {
		a.Log.Warn(msg)
	} else {
		a.Log.Info(msg)
	}
}
