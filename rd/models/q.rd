<resource schema="epnml_models" resdir="models">
	<meta name="title">epnml model registry: the machine-learning models behind the epnml catalogues</meta>
	<meta name="description">
		Every model version that wrote rows into the epnml EPN-TAP services:
		name, version, SHA-256 of the weights file, training data, training
		command and metrics from its model card, the full card as JSON, and
		how many current and superseded catalogue rows it produced.  Every
		product row references its model by ml_model_name and
		ml_model_version, so the two tables join in ADQL.
	</meta>
	<meta name="creationDate">2026-11-22T00:00:00</meta>
	<meta name="subject">planetary-science</meta>
	<meta name="subject">solar-system-astronomy</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>

	<table id="versions" onDisk="True" adql="True">
		<meta name="description">
			Model versions (one row each), a view over the store's registry.
		</meta>
		<column name="model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Model name (the science case's short name)"/>
		<column name="model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Model version (ml_model_version of the rows it wrote)"/>
		<column name="weights_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 of the weights file"/>
		<column name="registered_at" type="timestamp" ucd="time.creation" required="True"
			description="When the version first wrote rows into this service"/>
		<column name="training_data" type="text" ucd="meta.note"
			description="Training data from the model card (JSON): what is real and what is simulated"/>
		<column name="training_command" type="text" ucd="meta.code"
			description="Command that produced the weights"/>
		<column name="metrics" type="text" ucd="meta.note"
			description="Evaluation metrics from the model card (JSON)"/>
		<column name="card" type="text" ucd="meta.note"
			description="The whole model card (JSON)"/>
		<column name="n_current_rows" type="bigint" ucd="meta.number" required="True"
			description="Catalogue rows of this version currently served"/>
		<column name="n_superseded_rows" type="bigint" ucd="meta.number" required="True"
			description="Rows of this version superseded by a newer version (kept in the store)"/>
		<viewStatement>
			CREATE VIEW \curtable AS (SELECT \colNames FROM epnml.model_registry)
		</viewStatement>
	</table>

	<table id="score_drift" onDisk="True" adql="True">
		<meta name="description">
			Drift indicator per model version: the distribution of ml_score of the
			rows it wrote, per month of creation_date, over current and superseded
			rows of every epnml product table (a view over the store).
		</meta>
		<column name="model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Model name"/>
		<column name="model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Model version (derived versions such as 1.0.0+threshold-0.7 included)"/>
		<column name="month_start" type="timestamp" ucd="time.epoch" required="True"
			description="First day of the month of the rows' creation_date (UTC)"/>
		<column name="n_rows" type="bigint" ucd="meta.number" required="True"
			description="Rows written that month, current and superseded"/>
		<column name="n_scored" type="bigint" ucd="meta.number" required="True"
			description="Rows with an ml_score"/>
		<column name="n_current" type="bigint" ucd="meta.number" required="True"
			description="Rows still served (not superseded)"/>
		<column name="score_mean" type="double precision" ucd="stat.mean;stat.value"
			description="Mean ml_score"/>
		<column name="score_p10" type="double precision" ucd="stat.value"
			description="10th percentile of ml_score"/>
		<column name="score_p50" type="double precision" ucd="stat.median;stat.value"
			description="Median ml_score"/>
		<column name="score_p90" type="double precision" ucd="stat.value"
			description="90th percentile of ml_score"/>
		<viewStatement>
			CREATE VIEW \curtable AS (SELECT \colNames FROM epnml.score_drift)
		</viewStatement>
	</table>

	<data id="import">
		<make table="versions"/>
		<make table="score_drift"/>
	</data>

	<regSuite title="epnml model registry regression">
		<regTest title="the registry answers through TAP">
			<url parSet="TAP" QUERY="SELECT model_name, model_version, weights_sha256 FROM epnml_models.versions WHERE model_version = '1.0.0'"
				>/tap/sync</url>
			<code>
				# rows, not the column name: it is also in the header of an empty answer
				rows = self.getVOTableRows()
				self.assertTrue(rows, "no registered model version served")
				for row in rows:
					self.assertEqual(len(row["weights_sha256"]), 64)
			</code>
		</regTest>
	</regSuite>
</resource>
