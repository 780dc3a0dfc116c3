# Writes <outcome>.yaml: a Pipeline "wf" whose tasks are resolved from the same bundle, and Tasks "build"/"test".
import sys
REG = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:24500"
for o, img in [("ok","example.local/step:ok"),("exit1","kwok.local/outcome:exit1"),("oom","kwok.local/outcome:oom"),
               ("pull-fail","kwok.local/outcome:pull-fail"),("hang","kwok.local/outcome:hang")]:
    ref = f"{REG}/wf/{o}:v1"
    def tref(n): return f"""    taskRef:
      resolver: bundles
      params:
      - {{name: bundle, value: "{ref}"}}
      - {{name: name, value: {n}}}
      - {{name: kind, value: task}}"""
    open(f"{o}.yaml","w").write(f"""apiVersion: tekton.dev/v1
kind: Pipeline
metadata:
  name: wf
spec:
  params:
  - name: greeting
    type: string
    default: hello
  tasks:
  - name: build
{tref("build")}
    params:
    - name: greeting
      value: $(params.greeting)
  - name: test
    runAfter: [build]
{tref("test")}
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: build
spec:
  params:
  - name: greeting
    type: string
  steps:
  - name: compile
    image: example.local/step:ok
    script: echo $(params.greeting)
  - name: package
    image: {img}
    command: ["true"]
  - name: publish
    image: example.local/step:ok
    command: ["true"]
---
apiVersion: tekton.dev/v1
kind: Task
metadata:
  name: test
spec:
  steps:
  - name: unit
    image: example.local/step:ok
    command: ["true"]
""")
