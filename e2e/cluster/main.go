// Command cluster-harness runs a real kube-apiserver backed by an embedded etcd in
// one process on 127.0.0.1, and kube-controller-manager beside it, for tests. See
// /work/shared/docs/apiserver-harness.md section 5 and e2e/cluster/README.md.
//
// Usage:
//
//	cluster-harness --dir DIR [--port N] [--etcd-port N] [--keep] [--remove-dir-on-exit] [--no-controller-manager] [-- extra kube-apiserver flags]
//
// Once kube-apiserver is ready, the harness starts itself again as a child process
// running kube-controller-manager (the first argument kube-controller-manager selects
// that mode): a second process because both components install process-wide signal
// handlers and register the same component globals. Its log goes to
// DIR/controller-manager.log; it gets SIGTERM when the harness stops or dies.
//
// It writes its PKI to DIR/pki, etcd data to DIR/etcd, its log (etcd, kube-apiserver
// and its own messages) to DIR/cluster.log, and, once /readyz answers 200 and the
// namespace "default" exists, an admin kubeconfig to DIR/kubeconfig followed by the
// marker file DIR/ready (holding the server URL). It also prints one line
// "READY DIR/kubeconfig" on stdout. SIGTERM or SIGINT shuts kube-apiserver down
// gracefully, then etcd; a second signal exits at once with status 1.
package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	_ "time/tzdata" // as upstream kube-apiserver: time zone support for CronJob
	"unsafe"

	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // as upstream: JSON log format registration
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // as upstream: client-go metrics
	_ "k8s.io/component-base/metrics/prometheus/version"  // as upstream: version metric
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// origStderr is the harness's stderr before it was redirected to the log file.
var origStderr io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s cluster-harness: %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// fatalf reports to the log file and to the original stderr.
func fatalf(format string, args ...any) {
	logf(format, args...)
	if origStderr != os.Stderr {
		fmt.Fprintf(origStderr, "cluster-harness: %s\n", fmt.Sprintf(format, args...))
	}
}

// main runs on the main thread (locked in init): the parent-death signal set by
// whoever spawned the harness belongs to that thread.
func init() { runtime.LockOSThread() }

func main() {
	if len(os.Args) > 1 && os.Args[1] == controllerManagerMode {
		runtime.UnlockOSThread()
		cmd := kcmapp.NewControllerManagerCommand()
		cmd.SetArgs(os.Args[2:])
		os.Exit(cli.Run(cmd))
	}
	hup := adoptParentDeathSignal()
	runtime.UnlockOSThread()
	os.Exit(run(hup))
}

// controllerManagerMode, as the first argument, runs kube-controller-manager instead of
// the harness (the child process started by startControllerManager).
const controllerManagerMode = "kube-controller-manager"

// controllers are what the tests need of kube-controller-manager: workloads roll out
// (Deployments create ReplicaSets, and so on; with no scheduler or kubelet their Pods
// stay Pending), ownerReferences are garbage-collected, deleted namespaces are emptied
// and go away, aggregated ClusterRoles are filled in. Not the service-account
// controllers: the harness runs without the ServiceAccount admission plugin, and
// tests make the ServiceAccounts they use.
var controllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"daemonset-controller",
	"job-controller",
	"cronjob-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"clusterrole-aggregation-controller",
}

// adoptParentDeathSignal replaces a parent-death signal (PR_SET_PDEATHSIG) set by
// the spawner, typically SIGTERM, with SIGHUP, which is caught here and turned into
// exactly one SIGTERM. The kernel sends the parent-death signal again each time the
// harness is handed to another thread of a dying multi-threaded parent (a test
// process), and kube-apiserver's handler exits at once, skipping all clean-up, on a
// second SIGTERM. Returns nil if no parent-death signal was set.
func adoptParentDeathSignal() <-chan os.Signal {
	var sig int32
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0); e != 0 || sig == 0 {
		return nil
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGHUP), 0); e != 0 {
		signal.Stop(ch)
		return nil
	}
	// If the parent died before this point, its own signal was already delivered.
	return ch
}

type options struct {
	dir       string
	port      int
	etcdPort  int
	keep      bool
	removeDir bool
	logToFile bool
	// controllerManager starts kube-controller-manager once kube-apiserver is ready.
	controllerManager bool
	extra             []string
}

func parseFlags() (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("cluster-harness", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", "", "working directory (required): pki/, etcd/, cluster.log, kubeconfig, ready")
	fs.IntVar(&o.port, "port", 0, "kube-apiserver secure port on 127.0.0.1 (0 = pick a free port)")
	fs.IntVar(&o.etcdPort, "etcd-port", 0, "etcd client port on 127.0.0.1 (0 = pick a free port)")
	fs.BoolVar(&o.keep, "keep", false, "keep DIR/etcd on exit, and start again on DIR/etcd and DIR/pki when an earlier run left them (a restart of the same cluster)")
	fs.BoolVar(&o.removeDir, "remove-dir-on-exit", false, "remove DIR entirely when stopped by SIGTERM/SIGINT (for a DIR made only for this run); kept after a failure")
	fs.BoolVar(&o.logToFile, "log-to-file", true, "redirect stderr (etcd, kube-apiserver, harness) to DIR/cluster.log")
	noControllerManager := fs.Bool("no-controller-manager", false, "do not start kube-controller-manager (no rollouts, garbage collection or namespace deletion)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: cluster-harness --dir DIR [--port N] [--etcd-port N] [--keep] [--no-controller-manager] [-- extra kube-apiserver flags]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	o.extra = fs.Args()
	o.controllerManager = !*noControllerManager
	if o.dir == "" {
		fs.Usage()
		return nil, errors.New("--dir is required")
	}
	abs, err := filepath.Abs(o.dir)
	if err != nil {
		return nil, err
	}
	o.dir = abs
	return o, nil
}

func run(parentDied <-chan os.Signal) int {
	o, err := parseFlags()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "cluster-harness: %v\n", err)
		return 2
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "cluster-harness: %v\n", err)
		return 1
	}
	readyPath := filepath.Join(o.dir, "ready")
	kubeconfigPath := filepath.Join(o.dir, "kubeconfig")
	_ = os.Remove(readyPath)
	_ = os.Remove(kubeconfigPath)

	if o.logToFile {
		if err := redirectStderr(filepath.Join(o.dir, "cluster.log")); err != nil {
			fmt.Fprintf(os.Stderr, "cluster-harness: redirecting stderr: %v\n", err)
			return 1
		}
	}
	_ = os.WriteFile(filepath.Join(o.dir, "harness.pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	start := time.Now()

	// Build the command first: NewAPIServerCommand installs the SIGTERM/SIGINT
	// handler (genericapiserver.SetupSignalContext, callable once per process), so a
	// signal during etcd start-up is seen through ctx instead of killing us with
	// etcd half-open.
	cmd := app.NewAPIServerCommand()
	ctx := cmd.Context()
	if parentDied != nil {
		go func() {
			<-parentDied // later SIGHUPs stay caught by the Notify and are dropped
			logf("parent process died; shutting down")
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		}()
	}

	pki, err := preparePKI(filepath.Join(o.dir, "pki"), o.keep)
	if err != nil {
		fatalf("generating certificates: %v", err)
		return 1
	}

	etcd, etcdURL, err := startEtcd(ctx, o)
	if err != nil {
		fatalf("starting etcd: %v", err)
		if ctx.Err() != nil && o.removeDir {
			// Signalled during start-up: nothing worth keeping for debugging.
			_ = os.RemoveAll(o.dir)
		}
		return 1
	}
	etcdDir := etcd.Config().Dir
	var stopping atomic.Bool
	var cleanupOnce sync.Once
	kcm := &controllerManager{}
	cleanup := func() {
		cleanupOnce.Do(func() {
			stopping.Store(true)
			kcm.stop()
			etcd.Close()
			if !o.keep {
				_ = os.RemoveAll(etcdDir)
			}
			_ = os.Remove(readyPath)
			logf("stopped")
			if o.removeDir && ctx.Err() != nil {
				_ = os.RemoveAll(o.dir)
			}
		})
	}
	defer cleanup()
	// kube-apiserver calls klog.Fatal in some paths, e.g. when a post-start hook is
	// cancelled because SIGTERM arrived during start-up. Clean up before that exit too.
	klog.OsExit = func(code int) {
		logf("kube-apiserver exited fatally with status %d", code)
		cleanup()
		os.Exit(code)
	}
	if ctx.Err() != nil {
		logf("signalled during start-up")
		return 1
	}
	go func() {
		if err, ok := <-etcd.Err(); ok && err != nil && !stopping.Load() {
			logf("etcd failed: %v; stopping kube-apiserver", err)
			_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
		}
	}()

	port := o.port
	if port == 0 {
		ports, err := freePorts(1)
		if err != nil {
			fatalf("picking a port: %v", err)
			return 1
		}
		port = ports[0]
	}
	serverURL := "https://127.0.0.1:" + strconv.Itoa(port)

	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + pki.dir,
		"--tls-cert-file=" + pki.servingCert,
		"--tls-private-key-file=" + pki.servingKey,
		"--client-ca-file=" + pki.caCert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-signing-key-file=" + pki.saKey,
		"--service-account-key-file=" + pki.saPub,
		"--authorization-mode=RBAC",
		"--endpoint-reconciler-type=none",
		"--disable-admission-plugins=ServiceAccount",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=0",
	}
	args = append(args, o.extra...)
	cmd.SetArgs(args)

	beforeReady := func() {}
	if o.controllerManager {
		beforeReady = func() { kcm.start(ctx, o.dir, kubeconfigPath, &stopping) }
		// Stopped as soon as the signal arrives: kube-apiserver's graceful shutdown waits
		// (up to a minute) for the watches clients hold open, and the controller manager
		// holds dozens.
		go func() {
			<-ctx.Done()
			stopping.Store(true)
			kcm.stop()
		}()
	}
	go waitReady(ctx, pki, serverURL, kubeconfigPath, readyPath, start, beforeReady)

	logf("etcd ready at %s after %s; starting kube-apiserver on %s", etcdURL, time.Since(start).Round(time.Millisecond), serverURL)
	code := cli.Run(cmd)
	logf("kube-apiserver exited with status %d", code)
	return code
}

// redirectStderr points file descriptor 2 at path, so that etcd's zap logger,
// klog and Go runtime panics all land in the log file. The original stderr is
// kept for fatal start-up messages.
func redirectStderr(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	saved, err := syscall.Dup(2)
	if err != nil {
		return err
	}
	syscall.CloseOnExec(saved)
	if err := syscall.Dup3(int(f.Fd()), 2, 0); err != nil {
		return err
	}
	_ = f.Close()
	origStderr = os.NewFile(uintptr(saved), "stderr")
	return nil
}

// freePorts returns n distinct free loopback ports, holding all listeners open
// until every port is chosen.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func startEtcd(ctx context.Context, o *options) (*embed.Etcd, string, error) {
	dir := filepath.Join(o.dir, "etcd")
	// etcd data from an earlier run with --keep: started on it again, a restart of the
	// same cluster (same objects, same resourceVersions)
	_, statErr := os.Stat(filepath.Join(dir, "member"))
	kept := statErr == nil
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		// Three ports: a restart with --port starts etcd while kube-apiserver's port is free,
		// and a free port picked then can be that one (seen in the restart fault case).
		ports, err := freePorts(3)
		if err != nil {
			return nil, "", err
		}
		ports = slices.DeleteFunc(ports, func(p int) bool { return p == o.port })
		clientPort, peerPort := ports[0], ports[1]
		if o.etcdPort != 0 {
			clientPort = o.etcdPort
		}
		if o.keep && kept {
			logf("reusing the etcd data in %s", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, "", err
		}
		clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
		peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}

		cfg := embed.NewConfig()
		cfg.Name = "harness"
		cfg.Dir = dir
		cfg.ListenClientUrls = []url.URL{clientURL}
		cfg.AdvertiseClientUrls = []url.URL{clientURL}
		cfg.ListenPeerUrls = []url.URL{peerURL}
		cfg.AdvertisePeerUrls = []url.URL{peerURL}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		cfg.UnsafeNoFsync = true // throwaway test data
		cfg.Logger = "zap"
		cfg.LogLevel = "error"
		cfg.LogOutputs = []string{"stderr"}

		e, err := embed.StartEtcd(cfg)
		if err != nil {
			lastErr = err
			logf("etcd start attempt %d failed: %v", attempt+1, err)
			if o.etcdPort == 0 && strings.Contains(err.Error(), "address already in use") {
				continue
			}
			return nil, "", err
		}
		select {
		case <-e.Server.ReadyNotify():
			return e, clientURL.String(), nil
		case err := <-e.Err():
			e.Close()
			return nil, "", fmt.Errorf("etcd failed during start-up: %w", err)
		case <-ctx.Done():
			e.Close()
			return nil, "", ctx.Err()
		case <-time.After(60 * time.Second):
			e.Server.Stop()
			e.Close()
			return nil, "", errors.New("etcd took more than 60s to become ready")
		}
	}
	return nil, "", lastErr
}

// waitReady polls /readyz and the "default" namespace with the admin client
// certificate, then writes the kubeconfig, calls beforeReady, and writes the ready marker.
func waitReady(ctx context.Context, p *pkiFiles, serverURL, kubeconfigPath, readyPath string, start time.Time, beforeReady func()) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.caPEM)
	pair, err := tls.X509KeyPair(p.adminCertPEM, p.adminKeyPEM)
	if err != nil {
		logf("admin key pair: %v", err)
		return
	}
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs:      pool,
			Certificates: []tls.Certificate{pair},
			MinVersion:   tls.VersionTLS12,
		}},
	}
	get := func(path string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, serverURL+path, nil)
		if err != nil {
			return 0
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if get("/readyz") == http.StatusOK && get("/api/v1/namespaces/default") == http.StatusOK {
			break
		}
	}

	kc := clientcmdapi.NewConfig()
	kc.Clusters["harness"] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: p.caPEM}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: p.adminCertPEM, ClientKeyData: p.adminKeyPEM}
	kc.Contexts["admin"] = &clientcmdapi.Context{Cluster: "harness", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "admin"
	tmp := kubeconfigPath + ".tmp"
	if err := clientcmd.WriteToFile(*kc, tmp); err != nil {
		logf("writing kubeconfig: %v", err)
		return
	}
	if err := os.Rename(tmp, kubeconfigPath); err != nil {
		logf("writing kubeconfig: %v", err)
		return
	}
	beforeReady()
	if err := os.WriteFile(readyPath+".tmp", []byte(serverURL+"\n"), 0o600); err == nil {
		err = os.Rename(readyPath+".tmp", readyPath)
		if err != nil {
			logf("writing ready marker: %v", err)
			return
		}
	}
	logf("ready after %s: %s, kubeconfig %s", time.Since(start).Round(time.Millisecond), serverURL, kubeconfigPath)
	fmt.Fprintf(os.Stdout, "READY %s\n", kubeconfigPath)
}

// preparePKI reuses the PKI in dir when keep is set and an earlier run wrote it all (so
// kubeconfigs and service-account tokens issued before a restart stay valid); otherwise it
// generates a new one.
func preparePKI(dir string, keep bool) (*pkiFiles, error) {
	if keep {
		p, err := readPKI(dir)
		if err == nil {
			logf("reusing the PKI in %s", dir)
			return p, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("reading the kept PKI: %w", err)
		}
	}
	return writePKI(dir)
}

type pkiFiles struct {
	dir                              string
	caCert, servingCert, servingKey  string
	saKey, saPub                     string
	caPEM, adminCertPEM, adminKeyPEM []byte
}

func writePKI(dir string) (*pkiFiles, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(365*24*time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "imagestream-operator-harness-ca"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	issue := func(tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber = serial()
		tmpl.NotBefore, tmpl.NotAfter = notBefore, notAfter
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.BasicConstraintsValid = true
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			return nil, nil, err
		}
		k, err := pemKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), k, nil
	}

	servingCert, servingKey, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
	})
	if err != nil {
		return nil, err
	}
	adminCert, adminKey, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	saKeyPEM, err := pemKey(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	caKeyPEM, err := pemKey(caKey)
	if err != nil {
		return nil, err
	}
	p := pkiPaths(dir)
	p.caPEM, p.adminCertPEM, p.adminKeyPEM = caPEM, adminCert, adminKey
	files := map[string][]byte{
		p.caCert:                        caPEM,
		filepath.Join(dir, "ca.key"):    caKeyPEM,
		p.servingCert:                   servingCert,
		p.servingKey:                    servingKey,
		filepath.Join(dir, "admin.crt"): adminCert,
		filepath.Join(dir, "admin.key"): adminKey,
		p.saKey:                         saKeyPEM,
		p.saPub:                         pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func pkiPaths(dir string) *pkiFiles {
	return &pkiFiles{
		dir:         dir,
		caCert:      filepath.Join(dir, "ca.crt"),
		servingCert: filepath.Join(dir, "apiserver.crt"),
		servingKey:  filepath.Join(dir, "apiserver.key"),
		saKey:       filepath.Join(dir, "sa.key"),
		saPub:       filepath.Join(dir, "sa.pub"),
	}
}

// readPKI loads what writePKI wrote; an error wrapping os.ErrNotExist when a file is missing.
func readPKI(dir string) (*pkiFiles, error) {
	p := pkiPaths(dir)
	for _, path := range []string{p.servingCert, p.servingKey, p.saKey, p.saPub} {
		if _, err := os.Stat(path); err != nil {
			return nil, err
		}
	}
	var err error
	if p.caPEM, err = os.ReadFile(p.caCert); err != nil {
		return nil, err
	}
	if p.adminCertPEM, err = os.ReadFile(filepath.Join(dir, "admin.crt")); err != nil {
		return nil, err
	}
	if p.adminKeyPEM, err = os.ReadFile(filepath.Join(dir, "admin.key")); err != nil {
		return nil, err
	}
	if _, err := tls.X509KeyPair(p.adminCertPEM, p.adminKeyPEM); err != nil {
		return nil, fmt.Errorf("admin certificate: %w", err)
	}
	return p, nil
}

func pemKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err)
	}
	return n.Add(n, big.NewInt(1))
}

// controllerManager is the kube-controller-manager child process: started once
// kube-apiserver is ready, started again if it exits while the harness runs, stopped
// (SIGTERM, then SIGKILL after 10 s) before etcd.
type controllerManager struct {
	mu      sync.Mutex
	process *os.Process
	// done is closed when the supervising goroutine has ended.
	done chan struct{}
}

func (c *controllerManager) start(ctx context.Context, dir, kubeconfig string, stopping *atomic.Bool) {
	self, err := os.Executable()
	if err != nil {
		logf("kube-controller-manager not started: %v", err)
		return
	}
	logPath := filepath.Join(dir, "controller-manager.log")
	args := []string{
		controllerManagerMode,
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=" + strings.Join(controllers, ","),
		"--use-service-account-credentials=false",
		"--v=0",
	}
	done := make(chan struct{})
	c.mu.Lock()
	c.done = done
	c.mu.Unlock()
	started := make(chan struct{})
	go func() {
		defer close(done)
		// The parent-death signal belongs to the thread that forks: this goroutine
		// keeps its thread until the child has exited.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		first := true
		for attempt := 0; ; attempt++ {
			if stopping.Load() || ctx.Err() != nil {
				break
			}
			logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
			if err != nil {
				logf("kube-controller-manager not started: %v", err)
				break
			}
			cmd := exec.Command(self, args...)
			cmd.Stdout, cmd.Stderr = logFile, logFile
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
			err = cmd.Start()
			_ = logFile.Close()
			if err != nil {
				logf("kube-controller-manager not started: %v", err)
				break
			}
			c.mu.Lock()
			c.process = cmd.Process
			c.mu.Unlock()
			if stopping.Load() {
				// stop ran before the process was recorded
				_ = cmd.Process.Signal(syscall.SIGTERM)
			}
			logf("kube-controller-manager started (pid %d, log %s)", cmd.Process.Pid, logPath)
			if first {
				first = false
				close(started)
			}
			err = cmd.Wait()
			c.mu.Lock()
			c.process = nil
			c.mu.Unlock()
			if stopping.Load() || ctx.Err() != nil {
				break
			}
			logf("kube-controller-manager exited (%v); starting it again", err)
			time.Sleep(time.Second)
		}
		if first {
			close(started)
		}
	}()
	<-started
}

// stop ends the controller manager; the caller has set the stopping flag first.
func (c *controllerManager) stop() {
	c.mu.Lock()
	p, done := c.process, c.done
	c.mu.Unlock()
	if done == nil {
		return
	}
	if p != nil {
		_ = p.Signal(syscall.SIGTERM)
	}
	select {
	case <-done:
		return
	case <-time.After(10 * time.Second):
	}
	c.mu.Lock()
	p = c.process
	c.mu.Unlock()
	if p != nil {
		logf("kube-controller-manager did not stop within 10s; killing it")
		_ = p.Kill()
	}
	<-done
}
