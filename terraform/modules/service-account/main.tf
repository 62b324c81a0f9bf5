resource "google_service_account" "account" {
  project      = var.project_id
  account_id   = var.account_id
  display_name = var.account_id
  description  = var.description
}

resource "google_project_iam_member" "roles" {
  for_each = toset(var.project_roles)
  project  = var.project_id
  role     = each.value
  member   = "serviceAccount:${google_service_account.account.email}"
}
