package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDerivedPrint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "ssh.secret")
	if err := os.WriteFile(secret, []byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.secret")
	if err := os.WriteFile(bad, []byte("hello, world\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args           string
		code           int
		stdout, stderr string
	}{
		// The README's test vector.
		{args: "--print --secret-file $S --time 1767225600 192.0.2.1", stdout: "192.0.2.1 25702:tcp 26857:tcp 21681:tcp\n"},
		{args: "--print --secret-file=$S --time 1767225629 192.0.2.1", stdout: "192.0.2.1 25702:tcp 26857:tcp 21681:tcp\n"},
		{args: "192.0.2.1 --secret-file $S --time 1767225630 --print", stdout: "192.0.2.1 25778:tcp 23396:tcp 22155:tcp\n"},
		{args: "--print --secret-file $S --time 1767225600 --proto UDP --length 5 --ports 1000-1004 h", stdout: "h 1002:udp 1001:udp 1004:udp 1003:udp 1000:udp\n"},
		{args: "--print --secret-file $S --time 1767225600 --step 60 h", stdout: "h 25554:tcp 24925:tcp 26817:tcp\n"},
		{args: "--print --secret-file $D/nope h", code: 1, stderr: "knock: cannot read the secret: open $D/nope: no such file or directory\n"},
		{args: "--print --secret-file $B h", code: 1, stderr: "knock: $B: the secret is not base32"},
		{args: "--print --secret-file $D h", code: 1, stderr: "the secret must be in a regular file"},
		{args: "--secret-file $S h 7000", code: 1, stdout: "usage", stderr: "knock: with --secret-file, give the host alone: the ports are derived\n"},
		{args: "--print h 7000", code: 1, stdout: "usage", stderr: "knock: --length, --ports, --step, --proto, --time and --print go with --secret-file\n"},
		{args: "--print --secret-file $S --step 1 h", code: 1, stderr: "knock: invalid step \"1\" (want whole seconds, at least 2)\n"},
		{args: "--print --secret-file $S --length 0 h", code: 1, stderr: "knock: invalid length \"0\""},
		{args: "--print --secret-file $S --ports 9-8 h", code: 1, stderr: "knock: --ports: \"9-8\" is not a port range"},
		{args: "--print --secret-file $S --ports 9000-9001 h", code: 1, stderr: "fewer than the 3 distinct ports"},
		{args: "--print --secret-file $S --proto icmp h", code: 1, stderr: "knock: --proto: \"icmp\" is not a protocol"},
		{args: "--print --secret-file $S --time soon h", code: 1, stderr: "knock: invalid time \"soon\""},
	} {
		r := strings.NewReplacer("$S", secret, "$B", bad, "$D", dir)
		var out, errs bytes.Buffer
		code := run(context.Background(), append([]string{"knock"}, strings.Fields(r.Replace(tc.args))...), &out, &errs)
		wantOut := r.Replace(tc.stdout)
		if tc.stdout == "usage" {
			wantOut = usageOut
		}
		if code != tc.code || out.String() != wantOut || !strings.Contains(errs.String(), r.Replace(tc.stderr)) {
			t.Errorf("knock %s: status %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, out.String(), errs.String(), tc.code, wantOut, r.Replace(tc.stderr))
		}
	}
}
