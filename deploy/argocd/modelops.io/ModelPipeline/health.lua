-- Argo CD health of a modelops.io ModelPipeline. The pipeline follows kstatus: it is Ready only
-- when its router and every step's Model are Ready; Reconciling=True while it waits for them;
-- Stalled=True when a step names a Model that does not exist. Argo CD does not inherit health
-- from children, so the operator copies the steps' readiness into this status.
-- Lua 5.1 without the string library, so it runs from argocd-cm without useOpenLibs.
local function condition(type_)
  for _, c in ipairs(obj.status.conditions or {}) do
    if c.type == type_ then return c end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then return fallback end
  local text = c.reason or fallback
  if c.message ~= nil and c.message ~= "" then text = text .. ": " .. c.message end
  return text
end

local generation = obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil then
  return { status = "Progressing", message = "Waiting for the operator to observe the ModelPipeline" }
end
local ready = condition("Ready")
local seen = obj.status.observedGeneration
if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < seen then
  seen = ready.observedGeneration
end
if generation ~= nil and seen < generation then
  return { status = "Progressing",
           message = "Waiting for the operator to observe generation " .. generation }
end
if obj.spec ~= nil and obj.spec.suspend == true then
  return { status = "Suspended", message = "Suspended: spec.suspend is true" }
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  return { status = "Degraded", message = describe(stalled, "Stalled") }
end
local reconciling = condition("Reconciling")
local busy = reconciling ~= nil and reconciling.status == "True"
if ready ~= nil and ready.status == "True" and not busy then
  return { status = "Healthy", message = ready.message or "" }
end
if busy then
  return { status = "Progressing", message = describe(reconciling, "Reconciling") }
end
return { status = "Progressing", message = describe(ready, "Waiting for the Ready condition") }
