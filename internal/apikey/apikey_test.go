package apikey

import (
	"errors"
	"testing"

	"github.com/heraldpush/herald/internal/push"
)

func code(err error) string {
	var pe *push.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

func TestAuthenticate(t *testing.T) {
	keys := &Keys{Apps: map[string]string{"k-shop": "shop"}, Admin: []string{"k-admin"}}
	dev := &Keys{Apps: keys.Apps, Admin: keys.Admin, Dev: true}
	for _, tc := range []struct {
		keys   *Keys
		header string
		want   Caller
		code   string
	}{
		{keys, "Bearer k-shop", Caller{App: "shop"}, ""},
		{keys, "Bearer k-admin", Caller{Admin: true}, ""},
		{keys, "", Caller{}, push.CodeUnauthorized},
		{keys, "Bearer ", Caller{}, push.CodeUnauthorized},
		{keys, "k-shop", Caller{}, push.CodeUnauthorized}, // no scheme
		{keys, "Bearer nope", Caller{}, push.CodeUnauthorized},
		{dev, "", Caller{Admin: true}, ""},
		{dev, "Bearer nope", Caller{}, push.CodeUnauthorized}, // a key sent is checked in dev mode too
		{dev, "Bearer k-shop", Caller{App: "shop"}, ""},
	} {
		got, err := tc.keys.Authenticate(tc.header)
		if got != tc.want || code(err) != tc.code {
			t.Errorf("dev=%v %q: %+v %v; want %+v %q", tc.keys.Dev, tc.header, got, err, tc.want, tc.code)
		}
	}
}

func TestAppFor(t *testing.T) {
	one := &Keys{Apps: map[string]string{"k1": "shop", "k2": "shop"}}
	two := &Keys{Apps: map[string]string{"k1": "shop", "k2": "blog"}}
	dev := &Keys{Dev: true}
	shop, admin := Caller{App: "shop"}, Caller{Admin: true}
	for _, tc := range []struct {
		name   string
		keys   *Keys
		caller Caller
		named  string
		all    bool
		want   string
		code   string
	}{
		{"app key", two, shop, "", false, "shop", ""},
		{"app key naming its app", two, shop, "shop", false, "shop", ""},
		{"app key naming another", two, shop, "blog", false, "", push.CodeForbidden},
		{"admin naming", two, admin, "blog", false, "blog", ""},
		{"admin naming an unknown app", two, admin, "nope", false, "", push.CodeInvalidArgument},
		{"admin naming an unknown app, to all", two, admin, "nope", true, "", push.CodeInvalidArgument},
		{"admin naming demo outside dev", two, admin, "demo", false, "", push.CodeInvalidArgument},
		{"admin naming demo in dev", dev, admin, "demo", false, "demo", ""},
		{"admin naming an unknown app in dev", dev, admin, "nope", false, "", push.CodeInvalidArgument},
		{"admin naming a configured app in dev", &Keys{Dev: true, Apps: two.Apps}, admin, "blog", false, "blog", ""},
		{"admin, two apps", two, admin, "", false, "", push.CodeInvalidArgument},
		{"admin, one app", one, admin, "", false, "shop", ""},
		{"admin, dev", dev, admin, "", false, "demo", ""},
		{"admin to all", two, admin, "", true, "*", ""},
		{"admin to all of an app", two, admin, "blog", true, "blog", ""},
		{"app key to all", two, shop, "", true, "shop", ""}, // refused by the push service
	} {
		got, err := tc.keys.PushApp(tc.caller, tc.named, tc.all)
		if got != tc.want || code(err) != tc.code {
			t.Errorf("%s: %q %v; want %q %q", tc.name, got, err, tc.want, tc.code)
		}
		if !tc.all {
			if got2, err2 := tc.keys.AppFor(tc.caller, tc.named); got2 != got || code(err2) != code(err) {
				t.Errorf("%s: AppFor %q %v differs from PushApp", tc.name, got2, err2)
			}
		}
	}
}
