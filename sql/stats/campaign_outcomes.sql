-- A campaign's final counts: recipients by outcome and failure reason (each recipient once).
SELECT outcome, COALESCE(reason, '') AS reason, COUNT(*) AS recipients
FROM `{dataset}.recipient_outcomes`
WHERE campaign_id = @campaign
GROUP BY outcome, reason
ORDER BY outcome, reason
