// Command warmpool-health judges Kubernetes objects the way GitOps tools do, with their own
// code: kstatus (sigs.k8s.io/cli-utils, used by Flux, kpt and `kubectl` tooling), an Argo CD
// resource health check in Lua (github.com/yuin/gopher-lua, the interpreter Argo CD embeds,
// set up as Argo CD sets it up for a health check configured in argocd-cm) and Flux's
// healthCheckExprs (github.com/fluxcd/pkg/runtime/cel, the evaluator kustomize-controller runs).
//
//	warmpool-health kstatus              < objects.json
//	warmpool-health argocd SCRIPT.lua    < objects.json
//	warmpool-health flux EXPRS.yaml      < objects.json
//
// stdin is a JSON array of objects; stdout is a JSON array with one verdict per object,
// {"name", "status", "message"} (plus "error" when the tool refused the object).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	"github.com/fluxcd/pkg/apis/kustomize"
	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

type judge func(*unstructured.Unstructured) verdict

func main() {
	if len(os.Args) < 2 {
		fail("usage: warmpool-health kstatus | argocd SCRIPT.lua | flux EXPRS.yaml  < objects.json")
	}
	var j judge
	switch os.Args[1] {
	case "kstatus":
		j = kstatusJudge
	case "argocd":
		j = argoJudge(readArg())
	case "flux":
		j = fluxJudge(readArg())
	default:
		fail("unknown tool " + os.Args[1])
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err.Error())
	}
	// Decoded as client-go decodes objects from the apiserver: whole numbers become int64
	// (kstatus and Flux read metadata.generation and status.observedGeneration as int64).
	var objects []map[string]interface{}
	if err := utiljson.Unmarshal(raw, &objects); err != nil {
		fail("stdin is not a JSON array of objects: " + err.Error())
	}
	out := make([]verdict, 0, len(objects))
	for _, object := range objects {
		u := &unstructured.Unstructured{Object: object}
		v := j(u)
		v.Name = u.GetName()
		out = append(out, v)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(2)
}

func readArg() string {
	if len(os.Args) < 3 {
		fail(os.Args[1] + " needs a file argument")
	}
	data, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail(err.Error())
	}
	return string(data)
}

// kstatusJudge: status.Compute, the library call kpt, Flux and cli-utils' appliers use.
func kstatusJudge(u *unstructured.Unstructured) verdict {
	result, err := status.Compute(u)
	if err != nil {
		return verdict{Status: "Error", Error: err.Error()}
	}
	return verdict{Status: result.Status.String(), Message: result.Message}
}

// argoJudge runs a health script as Argo CD runs one from argocd-cm
// (resource.customizations.health.<group>_<kind>, useOpenLibs unset): no standard libraries
// but package, base and table (Argo CD adds a reduced os library, which warmpool's script does
// not use), a one-second deadline, the object as the global `obj`, and a returned table whose
// status must be one of Argo CD's health codes.
func argoJudge(script string) judge {
	valid := map[string]bool{
		"Healthy": true, "Progressing": true, "Degraded": true,
		"Suspended": true, "Missing": true, "Unknown": true,
	}
	return func(u *unstructured.Unstructured) verdict {
		l := lua.NewState(lua.Options{SkipOpenLibs: true})
		defer l.Close()
		for name, open := range map[string]lua.LGFunction{
			lua.LoadLibName: lua.OpenPackage,
			lua.BaseLibName: lua.OpenBase,
			lua.TabLibName:  lua.OpenTable,
		} {
			if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
				return verdict{Status: "Error", Error: err.Error()}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l.SetContext(ctx)
		l.SetGlobal("obj", toLua(l, u.Object))
		if err := l.DoString(script); err != nil {
			return verdict{Status: "Error", Error: err.Error()}
		}
		result, ok := l.Get(-1).(*lua.LTable)
		if !ok {
			return verdict{Status: "Error", Error: "the script returned " + l.Get(-1).Type().String() + ", not a table"}
		}
		code := lua.LVAsString(result.RawGetString("status"))
		message := lua.LVAsString(result.RawGetString("message"))
		if !valid[code] {
			return verdict{Status: "Unknown", Message: "Lua returned an invalid health status " + code}
		}
		return verdict{Status: code, Message: message}
	}
}

// toLua converts decoded JSON into Lua values (numbers, strings, booleans, tables; null is nil).
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []interface{}:
		table := l.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(l, item))
		}
		return table
	case map[string]interface{}:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetString(key, toLua(l, item))
		}
		return table
	}
	return lua.LNil
}

// fluxJudge evaluates healthCheckExprs (a YAML list, as in a Kustomization's
// spec.healthCheckExprs) with Flux's StatusEvaluator, picking the entry of the object's kind.
func fluxJudge(document string) judge {
	var checks []kustomize.CustomHealthCheck
	if err := yaml.UnmarshalStrict([]byte(document), &checks); err != nil {
		fail("healthCheckExprs: " + err.Error())
	}
	return func(u *unstructured.Unstructured) verdict {
		for i := range checks {
			check := checks[i]
			if check.APIVersion != u.GetAPIVersion() || check.Kind != u.GetKind() {
				continue
			}
			evaluator, err := fluxcel.NewStatusEvaluator(&check.HealthCheckExpressions)
			if err != nil {
				return verdict{Status: "Error", Error: err.Error()}
			}
			result, err := evaluator.Evaluate(context.Background(), u)
			if err != nil {
				return verdict{Status: "Error", Error: err.Error()}
			}
			return verdict{Status: result.Status.String(), Message: result.Message}
		}
		return verdict{Status: "Error", Error: "no healthCheckExprs entry for " + u.GetAPIVersion() + " " + u.GetKind()}
	}
}
