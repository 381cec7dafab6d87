package kubernetes

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/wa-sidecar/wa-sidecar/shared/config"
)

// object is one decoded manifest document.
type object struct {
	file string
	kind string
	name string
	obj  any
}

// newObject returns the typed object for an apiVersion and kind; nil for
// one these manifests should not hold.
func newObject(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/Service":
		return &corev1.Service{}
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	}
	return nil
}

var separator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decode reads one file's documents strictly: an unknown or misspelt
// field, a duplicate key or a wrong type is an error.
func decode(file string, raw []byte) ([]object, error) {
	var out []object
	for i, doc := range separator.Split(string(raw), -1) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return nil, fmt.Errorf("%s document %d: %w", file, i+1, err)
		}
		if meta.Kind == "" && strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		obj := newObject(meta.APIVersion, meta.Kind)
		if obj == nil {
			return nil, fmt.Errorf("%s document %d: unexpected %s %q", file, i+1, meta.APIVersion, meta.Kind)
		}
		// As the API server reads it: field names match case-sensitively
		// (encoding/json alone would take "fieldpath" for "fieldPath"),
		// and an unknown or duplicate field is an error.
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("%s document %d (%s): %w", file, i+1, meta.Kind, err)
		}
		strict, err := kjson.UnmarshalStrict(js, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err == nil && len(strict) > 0 {
			err = errors.Join(strict...)
		}
		if err != nil {
			return nil, fmt.Errorf("%s document %d (%s): %w", file, i+1, meta.Kind, err)
		}
		name := obj.(metav1.ObjectMetaAccessor).GetObjectMeta().GetName()
		if name == "" {
			return nil, fmt.Errorf("%s document %d (%s) has no name", file, i+1, meta.Kind)
		}
		out = append(out, object{file: file, kind: meta.Kind, name: name, obj: obj})
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func loadAll(t *testing.T) map[string]object {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	all := map[string]object{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decode(f, raw)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			key := o.kind + "/" + o.name
			if prev, dup := all[key]; dup {
				t.Fatalf("%s is in %s and %s", key, prev.file, o.file)
			}
			all[key] = o
		}
	}
	return all
}

func get[T any](t *testing.T, all map[string]object, kind, name string) T {
	t.Helper()
	o, ok := all[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %s in the manifests", kind, name)
	}
	return o.obj.(T)
}

func TestManifestsDecodeStrictly(t *testing.T) {
	all := loadAll(t)
	for _, want := range []string{
		"StatefulSet/wa-sidecar", "Service/wa-sidecar", "Service/wa-sidecar-api", "ConfigMap/wa-sidecar-config",
		"Secret/wa-sidecar-keys", "PodDisruptionBudget/wa-sidecar", "StatefulSet/etcd", "Service/etcd",
	} {
		if _, ok := all[want]; !ok {
			t.Errorf("missing %s", want)
		}
	}
}

// TestATypoFails makes sure the decoding above is strict: the same
// manifest with one field misspelt must not pass.
func TestATypoFails(t *testing.T) {
	raw, err := os.ReadFile("statefulset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, typo := range [][2]string{
		{"serviceName:", "serviceNme:"},
		{"readinessProbe:", "readynessProbe:"},
		{"fieldPath:", "fieldpath:"},
		{"replicas: 3", "replicas: three"},
	} {
		bad := bytes.Replace(raw, []byte(typo[0]), []byte(typo[1]), 1)
		if bytes.Equal(bad, raw) {
			t.Fatalf("%q is not in statefulset.yaml", typo[0])
		}
		if _, err := decode("statefulset.yaml", bad); err == nil {
			t.Errorf("%s decodes without an error", typo[1])
		}
	}
}

// TestSupervisorsHangTogether checks what no schema does: the names the
// manifests use for each other, and the paths the config and the mounts
// must agree on.
func TestSupervisorsHangTogether(t *testing.T) {
	all := loadAll(t)
	sts := get[*appsv1.StatefulSet](t, all, "StatefulSet", "wa-sidecar")
	headless := get[*corev1.Service](t, all, "Service", sts.Spec.ServiceName)
	if headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("service %s is not headless (clusterIP %q)", headless.Name, headless.Spec.ClusterIP)
	}
	labels := sts.Spec.Template.Labels
	for _, svc := range []*corev1.Service{headless, get[*corev1.Service](t, all, "Service", "wa-sidecar-api")} {
		for k, v := range svc.Spec.Selector {
			if labels[k] != v {
				t.Errorf("service %s selects %s=%s, the pods have %q", svc.Name, k, v, labels[k])
			}
		}
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("want one volume claim per pod, have %d", len(sts.Spec.VolumeClaimTemplates))
	}

	pod := sts.Spec.Template.Spec
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
		switch {
		case v.ConfigMap != nil:
			get[*corev1.ConfigMap](t, all, "ConfigMap", v.ConfigMap.Name)
		case v.Secret != nil:
			get[*corev1.Secret](t, all, "Secret", v.Secret.SecretName)
		}
	}
	volumes[sts.Spec.VolumeClaimTemplates[0].Name] = corev1.Volume{Name: sts.Spec.VolumeClaimTemplates[0].Name}
	mounts := map[string]string{} // mount path → volume, of the supervisor
	for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				t.Errorf("container %s mounts an undefined volume %s", c.Name, m.Name)
			}
			if c.Name == "supervisor" {
				mounts[m.MountPath] = m.Name
			}
		}
		for _, e := range c.Env {
			if e.Name == "POD_NAME" && (e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name") {
				t.Errorf("container %s: POD_NAME does not come from the pod's name", c.Name)
			}
		}
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("want the supervisor container alone, have %d", len(pod.Containers))
	}
	sup := pod.Containers[0]
	ports := map[string]int32{}
	for _, p := range sup.Ports {
		ports[p.Name] = p.ContainerPort
	}
	rp := sup.ReadinessProbe
	if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" || ports[rp.HTTPGet.Port.String()] == 0 {
		t.Errorf("readiness is not GET /readyz on a declared port: %+v", rp)
	}

	cfg := renderedConfig(t, all, "wa-sidecar-1", "prod")
	if mounts[cfg.StateDir] != sts.Spec.VolumeClaimTemplates[0].Name {
		t.Errorf("state_dir %s is not the pod's volume (mounts %v)", cfg.StateDir, mounts)
	}
	if ports["api"] == 0 || !strings.HasSuffix(cfg.API.Listen, fmt.Sprintf(":%d", ports["api"])) {
		t.Errorf("api.listen %s is not the api port %d", cfg.API.Listen, ports["api"])
	}
	keys := get[*corev1.Secret](t, all, "Secret", volumes[mounts[filepath.Dir(cfg.API.APIKeyFile)]].Secret.SecretName)
	for _, f := range []string{cfg.API.APIKeyFile, clusterKeyFile(t, all)} {
		vol, ok := volumes[mounts[filepath.Dir(f)]]
		if !ok || vol.Secret == nil {
			t.Errorf("%s is not in a mounted Secret", f)
			continue
		}
		if _, ok := keys.StringData[filepath.Base(f)]; !ok {
			t.Errorf("secret %s has no key %s", keys.Name, filepath.Base(f))
		}
	}
	toml := get[*corev1.ConfigMap](t, all, "ConfigMap", "wa-sidecar-config").Data["config.toml"]
	for _, want := range []string{
		`node = "wa-sidecar-1"`,
		`advertise = "http://wa-sidecar-1.` + headless.Name + `.prod.svc.cluster.local:8089"`,
	} {
		if !strings.Contains(render(toml, "wa-sidecar-1", "prod"), want) {
			t.Errorf("the rendered config lacks %s", want)
		}
	}
}

// render does what the init container's sed does.
func render(toml, pod, namespace string) string {
	return strings.NewReplacer("__POD_NAME__", pod, "__NAMESPACE__", namespace).Replace(toml)
}

// renderedConfig loads the ConfigMap's config.toml as a pod would, with
// config.Load's strict decoding (an unknown key is an error).
func renderedConfig(t *testing.T, all map[string]object, pod, namespace string) config.Config {
	t.Helper()
	cm := get[*corev1.ConfigMap](t, all, "ConfigMap", "wa-sidecar-config")
	toml, ok := cm.Data["config.toml"]
	if !ok {
		t.Fatal("the ConfigMap has no config.toml")
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(render(toml, pod, namespace)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the ConfigMap's config.toml: %v", err)
	}
	return cfg
}

// clusterKeyFile reads [cluster] key_file from the ConfigMap's text, so
// this test does not depend on how shared/config names the field.
func clusterKeyFile(t *testing.T, all map[string]object) string {
	t.Helper()
	toml := get[*corev1.ConfigMap](t, all, "ConfigMap", "wa-sidecar-config").Data["config.toml"]
	m := regexp.MustCompile(`(?m)^\s*key_file\s*=\s*"([^"]+)"`).FindStringSubmatch(toml)
	if m == nil {
		t.Fatal("the config has no [cluster] key_file")
	}
	return m[1]
}
