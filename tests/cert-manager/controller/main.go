// Command cm-controller runs a minimal subset of the cert-manager controllers
// (CA + SelfSigned issuers, the CertificateRequest approver/signers and the
// Certificate controllers) as a local process against the API server given by
// --kubeconfig. No leader election, no metrics/health servers, no ACME/Vault/
// Venafi, no ingress/gateway shims.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"

	// Issuer implementations used by the issuers/clusterissuers controllers
	// (they register themselves with pkg/issuer in init()).
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// Controllers run by default. clusterissuers is compiled in but opt-in.
var defaultControllers = []string{
	issuers.ControllerName,         // "issuers"
	crapprover.ControllerName,      // "certificaterequests-approver"
	crca.CRControllerName,          // "certificaterequests-issuer-ca"
	crselfsigned.CRControllerName,  // "certificaterequests-issuer-selfsigned"
	issuing.ControllerName,         // "certificates-issuing"
	keymanager.ControllerName,      // "certificates-key-manager"
	readiness.ControllerName,       // "certificates-readiness"
	requestmanager.ControllerName,  // "certificates-request-manager"
	revisionmanager.ControllerName, // "certificates-revision-manager"
	trigger.ControllerName,         // "certificates-trigger"
}

func main() {
	// Own FlagSet: keeps flags registered by dependencies on flag.CommandLine off our CLI.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	var (
		kubeconfig   = fs.String("kubeconfig", "", "path to kubeconfig (required)")
		namespace    = fs.String("namespace", "", "only watch this namespace (empty = all namespaces)")
		clusterResNS = fs.String("cluster-resource-namespace", "cert-manager", "namespace holding Secrets referenced by ClusterIssuers")
		controllers  = fs.String("controllers", strings.Join(defaultControllers, ","), "comma-separated controllers to run (also available: "+clusterissuers.ControllerName+")")
		workers      = fs.Int("workers", 5, "workers per controller")
		featureGates = fs.String("feature-gates", "", "cert-manager feature gates, e.g. ServerSideApply=true")
	)
	klog.InitFlags(fs) // -v=N etc.
	_ = fs.Parse(os.Args[1:])
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig is required")
		os.Exit(2)
	}
	if *featureGates != "" {
		if err := utilfeature.DefaultMutableFeatureGate.Set(*featureGates); err != nil {
			fmt.Fprintln(os.Stderr, "invalid --feature-gates:", err)
			os.Exit(2)
		}
	}
	klog.EnableContextualLogging(true)
	defer klog.Flush()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *kubeconfig, *namespace, *clusterResNS, strings.Split(*controllers, ","), *workers); err != nil {
		klog.ErrorS(err, "cm-controller failed")
		klog.Flush()
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, namespace, clusterResNS string, enabled []string, workers int) error {
	ctx = logf.NewContext(ctx, logf.Log, "controller")
	log := logf.FromContext(ctx)

	opts := controllerpkg.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   20, // upstream defaults; ignored when APF is on
		KubernetesAPIBurst: 50,
		Namespace:          namespace,
		IssuerOptions: controllerpkg.IssuerOptions{
			ClusterResourceNamespace:        clusterResNS,
			ClusterIssuerAmbientCredentials: true,
		},
		CertificateOptions: controllerpkg.CertificateOptions{
			// Upstream defaults (internal/apis/config/controller/v1alpha1).
			CopiedAnnotationPrefixes:                 []string{"*", "-kubectl.kubernetes.io/", "-fluxcd.io/", "-argocd.argoproj.io/"},
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	}
	factory, err := controllerpkg.NewContextFactory(ctx, opts)
	if err != nil {
		return fmt.Errorf("building controller context factory: %w", err)
	}
	// Base context: its informer factories are shared by every controller built below.
	base, err := factory.Build()
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	known := controllerpkg.Known()
	for _, name := range enabled {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		ctor, ok := known[name]
		if !ok {
			return fmt.Errorf("unknown controller %q (known: %v)", name, sortedKeys(known))
		}
		if namespace != "" && name == clusterissuers.ControllerName {
			log.Info("skipping clusterissuers controller: scoped to a single namespace")
			continue
		}
		iface, err := ctor(factory) // registers informers/event handlers
		if err != nil {
			return fmt.Errorf("constructing controller %q: %w", name, err)
		}
		log.Info("starting controller", "controller", name)
		g.Go(func() error { return iface.Run(workers, gctx) })
	}

	// Start informers only after all controllers registered theirs.
	base.SharedInformerFactory.Start(gctx.Done())
	base.KubeSharedInformerFactory.Start(gctx.Done())

	return g.Wait()
}

func sortedKeys(m map[string]controllerpkg.Constructor) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
