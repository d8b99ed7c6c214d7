-- Argo CD health check of warmpool.dev/InferencePool (argocd-cm key
-- resource.customizations.health.warmpool.dev_InferencePool; docs/gitops.md).
-- Runs with Argo CD's default libraries for configured checks (base, table, package):
-- no string library, so only operators and base functions are used here.
local hs = {}
local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report the pool's status"
  return hs
end
if obj.metadata.generation ~= nil and status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end
local conditions = {}
for _, condition in ipairs(status.conditions) do
  conditions[condition.type] = condition
end
local function is_true(kind)
  return conditions[kind] ~= nil and conditions[kind].status == "True"
end
local function describe(kind)
  local condition = conditions[kind]
  local text = condition.reason or kind
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end
-- The first abnormal or healthy condition that holds decides, in this order.
local verdicts = {
  {"Stalled", "Degraded"}, {"Degraded", "Degraded"}, {"Reconciling", "Progressing"}, {"Ready", "Healthy"},
}
for _, verdict in ipairs(verdicts) do
  if is_true(verdict[1]) then
    hs.status = verdict[2]
    hs.message = describe(verdict[1])
    return hs
  end
end
if conditions["Ready"] ~= nil and conditions["Ready"].reason == "ScaledToZeroNoActivator" then
  -- At zero with no activator to hold requests: idle by choice, not broken, not serving.
  hs.status = "Suspended"
  hs.message = describe("Ready")
  return hs
end
hs.status = "Progressing"
if conditions["Ready"] ~= nil then
  hs.message = describe("Ready")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
