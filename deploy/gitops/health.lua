-- Argo CD health check for TestLayerRun and CategoryRun (testlayer.dev).
-- Healthy once the run passed, Degraded when it ended otherwise or cannot go
-- on (Stalled), Suspended while suspended, Progressing before and while it runs.
hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the controller"
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for the controller to see the new spec"
  return hs
end
local cond = {}
for _, c in ipairs(obj.status.conditions) do
  cond[c.type] = c
end
if cond["Ready"] ~= nil and cond["Ready"].status == "True" then
  hs.status = "Healthy"
  hs.message = cond["Ready"].message
  return hs
end
if cond["Stalled"] ~= nil and cond["Stalled"].status == "True" then
  hs.status = "Degraded"
  hs.message = cond["Stalled"].message
  return hs
end
if cond["Complete"] ~= nil and cond["Complete"].status == "True" then
  hs.status = "Degraded"
  hs.message = cond["Complete"].message
  return hs
end
if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = obj.status.message
  return hs
end
hs.status = "Progressing"
hs.message = obj.status.message
return hs
