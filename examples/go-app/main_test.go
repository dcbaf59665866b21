package main

import (
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRoot(t *testing.T) {
	rec := httptest.NewRecorder()
	newMux().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "hello from go-app") {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Body.String())
	}
}
