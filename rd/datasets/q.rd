<resource schema="epnml_datasets" resdir="datasets">
	<meta name="title">epnml training datasets: the samples behind every model version</meta>
	<meta name="description">
		The exact training, validation and test sets of the machine-learning models
		that write the epnml catalogues, as published products: one dataset version
		per model version with a content hash, its source files (checksums, origin:
		catalogue, archive or simulator with its seed), and every sample with its
		split, observation, time range, label and who made the label (catalogue,
		annotator, simulator), plus a quality report (class balance, duplicates and
		near-duplicates across splits, agreement between two annotators) and
		DataCite metadata ready for a DOI.  versions joins epnml_models.versions on
		(model_name, model_version), and so every catalogue row (ml_model_name,
		ml_model_version) leads to its model's training samples.  Identifiers and
		labels only: the data values stay in their archives.
	</meta>
	<meta name="creationDate">2026-12-01T00:00:00</meta>
	<meta name="subject">planetary-science</meta>
	<meta name="subject">solar-system-astronomy</meta>
	<meta name="subject">machine-learning</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>

	<table id="versions" onDisk="True" adql="True">
		<meta name="description">
			Dataset versions, one per model version (a view over the store's
			epnml.dataset_versions; registered once, never changed).
		</meta>
		<foreignKey inTable="models/q#versions" source="model_name,model_version"
			metaOnly="True"/>
		<column name="dataset_id" type="text" ucd="meta.id;meta.main" required="True"
			description="Dataset version: model name-version@first 12 hex digits of the content hash"/>
		<column name="model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Model trained on it (ml_model_name of the catalogue rows)"/>
		<column name="model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Model version trained on it (ml_model_version of the catalogue rows)"/>
		<column name="content_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 over the sorted sample records and the sources' checksums and seeds"/>
		<column name="title" type="text" ucd="meta.title" required="True"
			description="Title of the dataset version"/>
		<column name="description" type="text" ucd="meta.note" required="True"
			description="What the samples are, how they were split, what is real and what simulated"/>
		<column name="n_train" type="integer" ucd="meta.number" required="True"
			description="Samples in the training split"/>
		<column name="n_validation" type="integer" ucd="meta.number" required="True"
			description="Samples in the validation split"/>
		<column name="n_test" type="integer" ucd="meta.number" required="True"
			description="Samples in the test split"/>
		<column name="quality" type="text" ucd="meta.note"
			description="Quality report (JSON): class balance per split, duplicates and near-duplicates across splits, label agreement"/>
		<column name="datacite" type="text" ucd="meta.note"
			description="DataCite 4 metadata (JSON attributes), ready for a DOI"/>
		<column name="registered_at" type="timestamp" ucd="time.creation" required="True"
			description="When the dataset version was registered in this service (UTC)"/>
		<viewStatement>
			CREATE VIEW \curtable AS (SELECT dataset_id, model_name, model_version,
				content_sha256, title, description, n_train, n_validation, n_test,
				quality::text AS quality, datacite::text AS datacite, registered_at
				FROM epnml.dataset_versions)
		</viewStatement>
	</table>

	<table id="sources" onDisk="True" adql="True">
		<meta name="description">
			Source files of each dataset version (a view over epnml.dataset_sources):
			a path relative to the shared-data root with its SHA-256, or a simulator
			run named module#seed=N with its seed.
		</meta>
		<foreignKey inTable="versions" source="dataset_id" metaOnly="True"/>
		<column name="dataset_id" type="text" ucd="meta.id" required="True"
			description="Dataset version"/>
		<column name="source_file" type="text" ucd="meta.id;meta.file" required="True"
			description="File (relative to the shared-data root) or simulator run (module#seed=N)"/>
		<column name="sha256" type="text" ucd="meta.checksum"
			description="SHA-256 of the file (NULL for a simulator run)"/>
		<column name="origin" type="text" ucd="meta.code.class" required="True"
			description="catalogue, archive or simulator"/>
		<column name="seed" type="integer" ucd="meta.code"
			description="Seed of a simulator run">
			<values nullLiteral="-1"/>
		</column>
		<column name="reference" type="text" ucd="meta.bib"
			description="DOI (doi:...) or URL of the published source"/>
		<viewStatement>
			CREATE VIEW \curtable AS (SELECT \colNames FROM epnml.dataset_sources)
		</viewStatement>
	</table>

	<table id="samples" onDisk="True" adql="True">
		<meta name="description">
			Every sample of each dataset version (a view over epnml.dataset_samples):
			its split, source file, observation, time range, label and label source.
		</meta>
		<foreignKey inTable="versions" source="dataset_id" metaOnly="True"/>
		<foreignKey inTable="sources" source="dataset_id,source_file" metaOnly="True"/>
		<column name="dataset_id" type="text" ucd="meta.id" required="True"
			description="Dataset version"/>
		<column name="sample_id" type="text" ucd="meta.id;meta.main" required="True"
			description="Sample: catalogue event id, crop#box, simulator seed..."/>
		<column name="split" type="text" ucd="meta.code.class" required="True"
			description="train, validation or test"/>
		<column name="source_file" type="text" ucd="meta.id;meta.file" required="True"
			description="Source file or simulator run the sample comes from"/>
		<column name="obs_id" type="text" ucd="meta.id;obs"
			description="Observation or granule the sample comes from (e.g. a HiRISE observation id)"/>
		<column name="time_min" type="timestamp" ucd="time.start"
			description="Start of the sample's time range (UTC), where it has one"/>
		<column name="time_max" type="timestamp" ucd="time.end"
			description="End of the sample's time range (UTC), where it has one"/>
		<column name="label" type="text" ucd="meta.code.class" required="True"
			description="Label (class, event type...)"/>
		<column name="label_source" type="text" ucd="meta.bib" required="True"
			description="Catalogue, annotator or simulator that made the label"/>
		<viewStatement>
			CREATE VIEW \curtable AS (SELECT \colNames FROM epnml.dataset_samples)
		</viewStatement>
	</table>

	<data id="import">
		<make table="versions"/>
		<make table="sources"/>
		<make table="samples"/>
	</data>

	<regSuite title="epnml training datasets regression">
		<regTest title="the dataset versions answer through TAP">
			<url parSet="TAP" QUERY="SELECT dataset_id, content_sha256 FROM epnml_datasets.versions"
				>/tap/sync</url>
			<code>
				rows = self.getVOTableRows()
				self.assertTrue(rows, "no dataset version served")
				for row in rows:
					self.assertEqual(len(row["content_sha256"]), 64)
			</code>
		</regTest>
	</regSuite>
</resource>
