package serve

import "net/http"

func (s *Server) viewerRoutes(mux *http.ServeMux) {}
