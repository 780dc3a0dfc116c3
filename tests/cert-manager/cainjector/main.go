// Command cm-cainjector runs cert-manager's cainjector reconcilers for
// Validating/MutatingWebhookConfigurations (optionally APIServices and CRDs)
// with a controller-runtime manager against --kubeconfig.
// Leader election, metrics and health probes are disabled.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiext "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	apireg "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	cmscheme "github.com/cert-manager/cert-manager/pkg/client/clientset/versioned/scheme"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	"github.com/cert-manager/cert-manager/pkg/util"
)

func main() {
	// Own FlagSet: controller-runtime registers --kubeconfig on flag.CommandLine in init().
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	var (
		kubeconfig  = fs.String("kubeconfig", "", "path to kubeconfig (required)")
		namespace   = fs.String("namespace", "", "only watch this namespace (empty = all namespaces)")
		injectables = fs.String("injectables",
			cainjector.ValidatingWebhookConfigurationName+","+cainjector.MutatingWebhookConfigurationName,
			"comma-separated injectable kinds: validatingwebhookconfiguration, mutatingwebhookconfiguration, apiservice, customresourcedefinition")
	)
	klog.InitFlags(fs)
	_ = fs.Parse(os.Args[1:])
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig is required")
		os.Exit(2)
	}
	ctrl.SetLogger(klog.NewKlogr())
	defer klog.Flush()

	if err := run(ctrl.SetupSignalHandler(), *kubeconfig, *namespace, strings.Split(*injectables, ",")); err != nil {
		klog.ErrorS(err, "cm-cainjector failed")
		klog.Flush()
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, namespace string, injectables []string) error {
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	// Field manager / user agent "cert-manager-cainjector".
	restConfig = util.RestConfigWithUserAgent(restConfig, "cainjector")

	scheme := runtime.NewScheme()
	utilruntime.Must(kscheme.AddToScheme(scheme))
	utilruntime.Must(cmscheme.AddToScheme(scheme))
	utilruntime.Must(apiext.AddToScheme(scheme))
	utilruntime.Must(apireg.AddToScheme(scheme))

	var defaultNamespaces map[string]cache.Config
	if namespace != "" {
		defaultNamespaces = map[string]cache.Config{namespace: {}}
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{
			ReaderFailOnMissingInformer: true,
			DefaultNamespaces:           defaultNamespaces,
		},
		// As upstream: never cache full Secrets; the reconciler GETs them directly
		// and the Secret watches are metadata-only.
		Client:                 client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		LeaderElection:         false,
		Metrics:                metricsserver.Options{BindAddress: "0"}, // disabled
		HealthProbeBindAddress: "0",                                     // disabled
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	// The Certificate data source watches cert-manager Certificates; wait for the CRD
	// (as upstream does) so that the manager's informers can start.
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		err := direct.Get(ctx, types.NamespacedName{Name: "certificates.cert-manager.io"}, &apiext.CustomResourceDefinition{})
		if err != nil {
			klog.InfoS("waiting for certificates.cert-manager.io CRD", "err", err.Error())
			return false, nil
		}
		return true, nil
	}); err != nil {
		return fmt.Errorf("certificates.cert-manager.io CRD not found: %w", err)
	}

	enabled := map[string]bool{}
	for _, k := range injectables {
		if k = strings.TrimSpace(k); k != "" {
			enabled[k] = true
		}
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		Namespace:                    namespace,
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor:        enabled,
	}); err != nil {
		return fmt.Errorf("registering injectors: %w", err)
	}
	return mgr.Start(ctx)
}
