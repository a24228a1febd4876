# Firestore in Datastore mode: campaigns, contents, segments, dedupe (BatchDone) and progress state.
resource "google_firestore_database" "datastore" {
  project                 = var.project_id
  name                    = "(default)"
  location_id             = var.firestore_location
  type                    = "DATASTORE_MODE"
  concurrency_mode        = "PESSIMISTIC"
  delete_protection_state = "DELETE_PROTECTION_ENABLED"
  deletion_policy         = "ABANDON"
}

# Composite indexes, read from the repository's datastore/index.yaml (the one list of what the queries
# need; today it is empty: every query is a single-property equality, served by built-in indexes).
locals {
  datastore_indexes = yamldecode(file("${path.module}/../datastore/index.yaml")).indexes
}

resource "google_firestore_index" "datastore" {
  for_each = { for i, idx in local.datastore_indexes : "${idx.kind}-${i}" => idx }

  project     = var.project_id
  database    = google_firestore_database.datastore.name
  collection  = each.value.kind
  api_scope   = "DATASTORE_MODE_API"
  query_scope = lookup(each.value, "ancestor", "no") == "yes" ? "COLLECTION_RECURSIVE" : "COLLECTION_GROUP"

  dynamic "fields" {
    for_each = each.value.properties
    content {
      field_path = fields.value.name
      order      = lookup(fields.value, "direction", "asc") == "desc" ? "DESCENDING" : "ASCENDING"
    }
  }
}
